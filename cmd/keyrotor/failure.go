package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/providers"
)

// A failure is what keyrotor says about an error that ends a command: the
// exit code and its kind, one line saying what failed and why, and what to
// do. The AWS SDK's chain ("operation error ..., https response error ...,
// RequestID ...") is left out of the line: it is printed only under
// --debug. The line is built from keyrotor's own wrapping (the command, the
// secret, the call) and from the SDK's error types, never from a key: no
// error of keyrotor carries one.
type failure struct {
	ExitCode int    `json:"exit_code"`
	Kind     string `json:"kind"` // usage, failed, problems, refused
	Message  string `json:"message"`
	Hint     string `json:"hint"`
}

// Kinds of failure, by exit code.
const (
	kindUsage    = "usage"
	kindFailed   = "failed"
	kindProblems = "problems"
	kindRefused  = "refused"
)

// line is the failure as keyrotor prints it: "message; hint".
func (f failure) line() string {
	if f.Hint == "" {
		return f.Message
	}
	return f.Message + "; " + f.Hint
}

// noRegionError: the AWS configuration has no region.
type noRegionError struct{ err error }

func (e *noRegionError) Error() string { return "load AWS configuration: " + e.err.Error() }
func (e *noRegionError) Unwrap() error { return e.err }

// noCredentialsError: the SDK's default chain found no credentials.
type noCredentialsError struct{ err error }

func (e *noCredentialsError) Error() string { return "load AWS credentials: " + e.err.Error() }
func (e *noCredentialsError) Unwrap() error { return e.err }

const localStackHint = "for the local stack, source the env file `keyrotor local --env-file FILE` wrote (. FILE)"

// describeFailure says what err means for the operator; command is the
// command path without "keyrotor " ("rollback"), used where err does not
// name the command itself.
func describeFailure(err error, command string) failure {
	code := cliExitCode(err)
	f := failure{ExitCode: code, Message: err.Error()}
	switch code {
	case operator.ExitUsage:
		f.Kind = kindUsage
		f.Hint = "run 'keyrotor " + command + " --help' for usage"
		return f
	case operator.ExitProblems:
		f.Kind = kindProblems
		return f
	case operator.ExitRefused:
		f.Kind = kindRefused
		return f
	}
	f.Kind = kindFailed
	var (
		noRegion   *noRegionError
		noCreds    *noCredentialsError
		noProfile  config.SharedConfigProfileNotExistError
		opErr      *smithy.OperationError
		apiErr     smithy.APIError
		sendErr    *smithyhttp.RequestSendError
		throttling = retry.IsErrorThrottles(retry.DefaultThrottles)
	)
	switch {
	case errors.Is(err, context.Canceled):
		f.Message, f.Hint = command+": interrupted", ""
	case errors.As(err, &noRegion):
		f.Message = command + ": no AWS region configured"
		f.Hint = "set AWS_REGION (export AWS_REGION=us-east-1), or " + localStackHint
	case errors.As(err, &noProfile):
		f.Message = fmt.Sprintf("%s: the AWS profile %q does not exist", command, noProfile.Profile)
		f.Hint = "check AWS_PROFILE, or unset it to use the default credentials"
	case errors.As(err, &noCreds):
		f.Message = command + ": no AWS credentials found (environment, profile, SSO, container or instance role)"
		f.Hint = "configure credentials (AWS_PROFILE, `aws configure` or `aws sso login`), or " + localStackHint
	case errors.Is(err, providers.ErrNoProvider):
		before, after := around(err, providers.ErrNoProvider)
		f.Message = joinContext(before, `no "provider" field: the secret is not managed by keyrotor (no keyrotor:managed tag)`) + after
		f.Hint = "check the secret's name and region, or bring it under keyrotor with `keyrotor inventory apply`"
	case errors.As(err, &opErr):
		before, after := around(err, opErr)
		if before == "" {
			before = command + ": " + sdkCall(opErr)
		}
		action := iamAction(opErr)
		switch {
		case throttling.IsErrorThrottle(err) == aws.TrueTernary:
			f.Message = before + ": throttled by AWS" + apiCode(err) + after
			f.Hint = "retry in a minute (AWS limits the request rate per account and operation)"
		case errors.As(err, &apiErr) && accessDenied[apiErr.ErrorCode()]:
			f.Message = before + ": access denied (" + apiErr.ErrorCode() + "): the caller may not call " + action + after
			f.Hint = "grant " + action + " to the role or user keyrotor runs as"
		case errors.As(err, &apiErr) && badCredentials[apiErr.ErrorCode()]:
			f.Message = before + ": AWS rejected the credentials (" + apiErr.ErrorCode() + ")" + after
			f.Hint = "refresh them (`aws sso login`, a new session), or " + localStackHint
		case errors.As(err, &apiErr):
			f.Message = before + ": " + apiErr.ErrorCode() + ": " + oneLine(apiErr.ErrorMessage()) + after
		case errors.As(err, &sendErr):
			f.Message = before + ": cannot reach AWS (" + sendReason(sendErr) + ")" + after
			f.Hint = "check the network and AWS_ENDPOINT_URL; for the local stack, check that `keyrotor local` is still running"
		default:
			f.Message = before + ": " + oneLine(innermost(opErr)) + after
		}
	}
	return f
}

// accessDenied and badCredentials are AWS error codes (smithy.APIError's
// ErrorCode) across the services the CLI calls.
var (
	accessDenied = map[string]bool{
		"AccessDenied": true, "AccessDeniedException": true, "UnauthorizedOperation": true,
		"AuthorizationError": true, "UnauthorizedException": true,
	}
	badCredentials = map[string]bool{
		"UnrecognizedClientException": true, "InvalidClientTokenId": true, "ExpiredToken": true,
		"ExpiredTokenException": true, "InvalidSignatureException": true, "SignatureDoesNotMatch": true,
		"InvalidAccessKeyId": true,
	}
)

// iamServices maps the SDK's service ids to IAM's action prefixes.
var iamServices = map[string]string{
	"Secrets Manager": "secretsmanager", "Lambda": "lambda", "SQS": "sqs", "IAM": "iam",
	"STS": "sts", "KMS": "kms", "CloudWatch": "cloudwatch",
}

// iamAction is the IAM action of an SDK call: secretsmanager:DescribeSecret.
func iamAction(e *smithy.OperationError) string {
	return iamPrefix(e.ServiceID) + ":" + e.OperationName
}

// sdkCall names an SDK call as keyrotor's errors do: secretsmanager.DescribeSecret.
func sdkCall(e *smithy.OperationError) string {
	return iamPrefix(e.ServiceID) + "." + e.OperationName
}

func iamPrefix(serviceID string) string {
	if p, ok := iamServices[serviceID]; ok {
		return p
	}
	return strings.ToLower(strings.ReplaceAll(serviceID, " ", ""))
}

// apiCode is " (Code)" for an API error, else "".
func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return " (" + apiErr.ErrorCode() + ")"
	}
	return ""
}

// around splits err's message around inner's: what keyrotor's wrapping
// says before it ("rollback s: secretsmanager.DescribeSecret", without the
// ": " that joins them) and after it ("; nothing was changed").
func around(err, inner error) (before, after string) {
	msg, in := err.Error(), inner.Error()
	i := strings.LastIndex(msg, in)
	if i < 0 {
		return "", ""
	}
	return strings.TrimSuffix(msg[:i], ": "), msg[i+len(in):]
}

func joinContext(before, what string) string {
	if before == "" {
		return what
	}
	return before + ": " + what
}

// sendReason is why a request could not be sent: the network error, without
// the SDK's framing.
func sendReason(e *smithyhttp.RequestSendError) string {
	var netErr *net.OpError
	if errors.As(e, &netErr) {
		return oneLine(netErr.Error())
	}
	return oneLine(innermost(e))
}

// innermost is the message of the last error of err's chain.
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
