package iam

import (
	"context"
	"errors"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyrotor/keyrotor/providers"
)

// errorCodeKinds maps the API error codes IAM and STS answer with to a Kind.
var errorCodeKinds = map[string]providers.Kind{
	"LimitExceeded":         providers.Conflict,
	"NoSuchEntity":          providers.NotFound,
	"AccessDenied":          providers.Permission,
	"InvalidClientTokenId":  providers.Permission,
	"SignatureDoesNotMatch": providers.Permission,
	"UnrecognizedClient":    providers.Permission,
	"Throttling":            providers.Transient,
	"ServiceUnavailable":    providers.Transient,
	"RequestLimitExceeded":  providers.Transient,
	"InternalFailure":       providers.Transient,
	"ValidationError":       providers.Invalid,
	"InvalidInput":          providers.Invalid,
}

// classify returns err as a *providers.Error for op. The Kind comes from the
// API error code; an error without a known code is classified by its HTTP
// status; transport and context errors are Transient.
func classify(op string, err error) *providers.Error {
	e := providers.E(op, kindOf(err), err)
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.Status = re.HTTPStatusCode()
		e.RequestID = re.ServiceRequestID()
	}
	return e
}

func kindOf(err error) providers.Kind {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return providers.Transient
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if k, ok := errorCodeKinds[apiErr.ErrorCode()]; ok {
			return k
		}
	}
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		return providers.Transient
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch status := re.HTTPStatusCode(); {
		case status == http.StatusTooManyRequests || status >= 500:
			return providers.Transient
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			return providers.Permission
		}
	}
	return providers.KindOf(err)
}

// redact hides secret in err's text. The SDK's errors do not quote the secret
// access key; this keeps it so whatever a server answers.
func redact(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{err: err, secret: secret}
}

type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, "<redacted>")
}

func (e *redactedError) Unwrap() error { return e.err }
