package local

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Binding tags (issue 10): an admin secret may serve only the managed
// secrets whose names match one of the comma-separated patterns of its
// TagAdminFor; an IAM user may be rotated only by the secret whose ARN its
// IAM tag TagBoundSecret holds. The stack sets both on what it creates.
const (
	TagAdminFor    = "keyrotor:admin-for"
	TagBoundSecret = "keyrotor:secret"
)

// createQueues creates the region's revocation queue and its dead-letter
// queue, with the RedrivePolicy the SAM template gives them.
func (r *RegionStack) createQueues(ctx context.Context) error {
	s, c := r.stack, r.clients.sqs
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(DLQName)})
	if err != nil {
		return fmt.Errorf("create queue %s: %w", DLQName, err)
	}
	r.DLQURL = aws.ToString(dlq.QueueUrl)
	redrive, _ := json.Marshal(map[string]string{
		"deadLetterTargetArn": queueARN(r.Name, DLQName),
		"maxReceiveCount":     strconv.Itoa(s.opts.MaxReceiveCount),
	})
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(QueueName),
		Attributes: map[string]string{
			"VisibilityTimeout": strconv.Itoa(int((s.opts.VisibilityTimeout + time.Second - 1) / time.Second)),
			"RedrivePolicy":     string(redrive),
		},
	})
	if err != nil {
		return fmt.Errorf("create queue %s: %w", QueueName, err)
	}
	r.QueueURL = aws.ToString(q.QueueUrl)
	return r.createEventsQueue(ctx)
}

// registerFunctions creates the role (IAM is global) and, in each region,
// the functions (a placeholder zip: the code runs under the emulators), the
// permission for Secrets Manager to invoke the rotation functions, and the
// gateway's admin secret.
func (s *Stack) registerFunctions(ctx context.Context) error {
	role, err := s.primary().clients.iam.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String(RoleName),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
	})
	if err != nil {
		return fmt.Errorf("create role %s: %w", RoleName, err)
	}
	zipFile, err := placeholderZip()
	if err != nil {
		return err
	}
	for _, r := range s.regions {
		if err := r.registerFunctions(ctx, aws.ToString(role.Role.Arn), zipFile); err != nil {
			return err
		}
	}
	return nil
}

func (r *RegionStack) registerFunctions(ctx context.Context, roleARN string, zipFile []byte) error {
	arch := lambdatypes.ArchitectureX8664
	if runtime.GOARCH == "arm64" {
		arch = lambdatypes.ArchitectureArm64
	}
	s, lc := r.stack, r.clients.lambda
	vars := map[string]string{}
	for _, kv := range r.functionEnv(s.Endpoint) {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "AWS_") { // reserved on AWS Lambda
			vars[k] = v
		}
	}
	for _, n := range s.functionNames() {
		f := r.Functions[n]
		out, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{
			FunctionName:  aws.String(f.FunctionName),
			Role:          aws.String(roleARN),
			Runtime:       lambdatypes.RuntimeProvidedal2023,
			Handler:       aws.String("bootstrap"),
			Architectures: []lambdatypes.Architecture{arch},
			Timeout:       aws.Int32(60),
			Code:          &lambdatypes.FunctionCode{ZipFile: zipFile},
			Environment:   &lambdatypes.Environment{Variables: vars},
		})
		if err != nil {
			return fmt.Errorf("create function %s in %s: %w", f.FunctionName, r.Name, err)
		}
		f.ARN = aws.ToString(out.FunctionArn)
		if n == "revoker" || n == "auditor" {
			continue
		}
		if _, err := lc.AddPermission(ctx, &lambda.AddPermissionInput{
			FunctionName: aws.String(f.FunctionName),
			StatementId:  aws.String("SecretsManagerInvoke"),
			Action:       aws.String("lambda:InvokeFunction"),
			Principal:    aws.String("secretsmanager.amazonaws.com"),
		}); err != nil {
			return fmt.Errorf("allow Secrets Manager to invoke %s in %s: %w", f.FunctionName, r.Name, err)
		}
	}
	admin, _ := json.Marshal(map[string]string{"key": s.adminToken})
	if _, err := r.clients.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(GatewayAdminSecret),
		Description:  aws.String("admin token of the local reference gateway"),
		SecretString: aws.String(string(admin)),
		// Every secret of the local stack may use it.
		Tags: []smtypes.Tag{{Key: aws.String(TagAdminFor), Value: aws.String("*")}},
	}); err != nil {
		return fmt.Errorf("create secret %s in %s: %w", GatewayAdminSecret, r.Name, err)
	}
	return nil
}

func placeholderZip() ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("bootstrap")
	if err != nil {
		return nil, fmt.Errorf("placeholder zip: %w", err)
	}
	_, _ = w.Write([]byte("#!/bin/sh\necho 'keyrotor local: this function runs under the runtime emulator' >&2\nexit 1\n"))
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("placeholder zip: %w", err)
	}
	return buf.Bytes(), nil
}

// Secret names a secret the stack created.
type Secret struct {
	Name string
	ARN  string
}

// CreateGatewaySecret creates a gateway secret in the first region, as
// RegionStack.CreateGatewaySecret does.
func (s *Stack) CreateGatewaySecret(ctx context.Context, name string, grace time.Duration) (Secret, error) {
	return s.primary().CreateGatewaySecret(ctx, name, grace)
}

// CreateIAMSecret creates an IAM secret in the first region, as
// RegionStack.CreateIAMSecret does.
func (s *Stack) CreateIAMSecret(ctx context.Context, name, userName string, grace time.Duration) (Secret, error) {
	return s.primary().CreateIAMSecret(ctx, name, userName, grace)
}

// CreateGatewaySecret creates a gateway secret in the region with no key
// yet, tagged keyrotor:managed=true and keyrotor:grace-period=grace, whose
// admin secret is the region's GatewayAdminSecret (TagAdminFor "*"), and configures its
// rotation with the region's gateway function (every RotationIntervalDay
// days), which rotates it once: the first rotation creates its key.
func (r *RegionStack) CreateGatewaySecret(ctx context.Context, name string, grace time.Duration) (Secret, error) {
	value, _ := json.Marshal(map[string]string{"provider": "gateway", "admin_secret_id": GatewayAdminSecret})
	return r.createManagedSecret(ctx, name, "gateway", string(value), grace, nil)
}

// CreateIAMSecret creates the IAM user userName (if it does not exist) and
// a secret in the region for its access keys, binds the user to the secret
// (IAM tag TagBoundSecret = the secret's ARN) and configures its rotation as
// CreateGatewaySecret does.
func (r *RegionStack) CreateIAMSecret(ctx context.Context, name, userName string, grace time.Duration) (Secret, error) {
	ic := r.clients.iam
	if _, err := ic.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(userName)}); err != nil {
		if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(userName)}); err != nil {
			return Secret{}, fmt.Errorf("create IAM user %s: %w", userName, err)
		}
	}
	value, _ := json.Marshal(map[string]string{"provider": "iam", "user_name": userName})
	bind := func(arn string) error {
		if _, err := ic.TagUser(ctx, &iam.TagUserInput{
			UserName: aws.String(userName),
			Tags:     []iamtypes.Tag{{Key: aws.String(TagBoundSecret), Value: aws.String(arn)}},
		}); err != nil {
			return fmt.Errorf("bind IAM user %s to %s: %w", userName, name, err)
		}
		return nil
	}
	return r.createManagedSecret(ctx, name, "iam", string(value), grace, bind)
}

// createManagedSecret creates the secret, calls bind (when not nil) with its
// ARN, then configures its rotation, which rotates it once.
func (r *RegionStack) createManagedSecret(ctx context.Context, name, function, value string, grace time.Duration, bind func(arn string) error) (Secret, error) {
	f, ok := r.Functions[function]
	if !ok {
		return Secret{}, fmt.Errorf("create secret %s: the stack runs no %s function", name, function)
	}
	sm := r.clients.sm
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		SecretString: aws.String(value),
		Tags: []smtypes.Tag{
			{Key: aws.String("keyrotor:managed"), Value: aws.String("true")},
			{Key: aws.String("keyrotor:grace-period"), Value: aws.String(grace.String())},
		},
	})
	if err != nil {
		return Secret{}, fmt.Errorf("create secret %s: %w", name, err)
	}
	if bind != nil {
		if err := bind(aws.ToString(out.ARN)); err != nil {
			return Secret{}, err
		}
	}
	if _, err := sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId:          aws.String(name),
		RotationLambdaARN: aws.String(f.ARN),
		RotationRules:     &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(RotationIntervalDay)},
	}); err != nil {
		return Secret{}, fmt.Errorf("configure rotation of %s: %w", name, err)
	}
	return Secret{Name: name, ARN: aws.ToString(out.ARN)}, nil
}

// Rotate rotates secretID in the first region, as RegionStack.Rotate does.
func (s *Stack) Rotate(ctx context.Context, secretID string) (string, error) {
	return s.primary().Rotate(ctx, secretID)
}

// Rotate calls RotateSecret on secretID in the region, as `aws --region R
// secretsmanager rotate-secret --secret-id` does: moto runs the four steps
// in the secret's rotation function (the region's) and fails if one fails.
// It returns the new version id.
func (r *RegionStack) Rotate(ctx context.Context, secretID string) (string, error) {
	out, err := r.clients.sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(secretID)})
	if err != nil {
		return "", fmt.Errorf("rotate %s in %s: %w", secretID, r.Name, err)
	}
	return aws.ToString(out.VersionId), nil
}
