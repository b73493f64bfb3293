package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/keyrotor/keyrotor/rotation"
)

// Lambda is the one Lambda call the operator makes: the configuration of a
// secret's rotation function, for what the function itself uses (its
// timeout, GRACE_PERIOD, REVOCATION_QUEUE_URL) rather than a guess.
type Lambda interface {
	GetFunctionConfiguration(ctx context.Context, in *lambda.GetFunctionConfigurationInput, optFns ...func(*lambda.Options)) (*lambda.GetFunctionConfigurationOutput, error)
}

// Variables of the rotation function's environment the operator reads.
const (
	envGracePeriod = "GRACE_PERIOD"
	envQueueURL    = "REVOCATION_QUEUE_URL"
)

// Defaults when the rotation function cannot be read.
const (
	// DefaultFunctionTimeout is Lambda's longest timeout: no step of a
	// rotation runs longer.
	DefaultFunctionTimeout = 900 * time.Second
	// RollbackGraceFallback is the grace rollback holds plain rotations for
	// when neither the secret's tag nor its function says: longer than the
	// built-in default, so that the hold is never shorter than the real
	// grace period of a deployment that raised it.
	RollbackGraceFallback = 2 * time.Hour
	// RollbackHoldMargin is added to the grace period for the rollback
	// hold (the runbook's "grace + 15 minutes").
	RollbackHoldMargin = 15 * time.Minute
)

// functionConfig is what the operator read of a rotation function; err says
// why it could not, and then the other fields are zero.
type functionConfig struct {
	timeout time.Duration
	env     map[string]string
	err     error
}

// function reads the configuration of the rotation function arn once per
// Operator (one command): status over many secrets of one function makes
// one call, and a failure is not retried for every secret.
func (o *Operator) function(ctx context.Context, arn string) functionConfig {
	if arn == "" {
		return functionConfig{err: errors.New("the secret has no rotation function")}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.functions[arn]; ok {
		return c
	}
	var c functionConfig
	if o.Lambda == nil {
		c.err = errors.New("no Lambda client is configured")
	} else if out, err := o.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(arn)}); err != nil {
		c.err = fmt.Errorf("lambda.GetFunctionConfiguration(%s): %w", arn, err)
	} else {
		c.env = map[string]string{}
		if out.Environment != nil {
			c.env = out.Environment.Variables
		}
		if t := aws.ToInt32(out.Timeout); t > 0 {
			c.timeout = time.Duration(t) * time.Second
		}
	}
	if o.functions == nil {
		o.functions = map[string]functionConfig{}
	}
	o.functions[arn] = c
	return c
}

// grace returns the grace period the secret's rotation function uses, as
// the function decides it: the secret's keyrotor:grace-period tag, else the
// function's GRACE_PERIOD, else (the variable unset) the built-in default.
// ok is false when it cannot be known: the tag is invalid (the function
// refuses to rotate), or the function cannot be read; why says which.
func (o *Operator) grace(ctx context.Context, s *secret) (d time.Duration, ok bool, why string) {
	if v, set := s.tags[rotation.TagGracePeriod]; set {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, false, fmt.Sprintf("tag %s=%q is not a Go duration (the rotation function refuses to rotate)", rotation.TagGracePeriod, v)
		}
		return d, true, ""
	}
	fn := o.function(ctx, aws.ToString(s.desc.RotationLambdaARN))
	if fn.err != nil {
		return 0, false, fn.err.Error()
	}
	v := fn.env[envGracePeriod]
	if v == "" {
		return rotation.DefaultGracePeriod, true, ""
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, false, fmt.Sprintf("the rotation function's %s=%q is not a Go duration", envGracePeriod, v)
	}
	return d, true, ""
}
