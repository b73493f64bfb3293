package operator

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// throttledSM retries every call Secrets Manager answers with a throttle
// (the SDK's own throttle detection, retry.DefaultThrottles), with an
// exponential backoff on the operator's clock, for as long as the context
// lives: a fleet rotation never gives up a secret because of a throttle.
// The SDK's retryer has already tried a few times when a throttle reaches
// here. Every call it wraps is idempotent (RotateSecret through its
// ClientRequestToken). It counts the throttles and the TagResource calls.
type throttledSM struct {
	SecretsManager
	o         *Operator
	throttled atomic.Int64
	tags      atomic.Int64
}

var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// Backoff bounds between two tries of a throttled call.
const (
	throttleFirst = 200 * time.Millisecond
	throttleMax   = 10 * time.Second
)

func retryThrottled[T any](ctx context.Context, t *throttledSM, call func() (T, error)) (T, error) {
	wait := throttleFirst
	for {
		out, err := call()
		if err == nil || throttles.IsErrorThrottle(err) != aws.TrueTernary || ctx.Err() != nil {
			return out, err
		}
		t.throttled.Add(1)
		if serr := t.o.sleep(ctx, wait); serr != nil {
			return out, err
		}
		wait = min(2*wait, throttleMax)
	}
}

func (t *throttledSM) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	return retryThrottled(ctx, t, func() (*secretsmanager.DescribeSecretOutput, error) {
		return t.SecretsManager.DescribeSecret(ctx, in, optFns...)
	})
}

func (t *throttledSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return retryThrottled(ctx, t, func() (*secretsmanager.GetSecretValueOutput, error) {
		return t.SecretsManager.GetSecretValue(ctx, in, optFns...)
	})
}

func (t *throttledSM) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	return retryThrottled(ctx, t, func() (*secretsmanager.PutSecretValueOutput, error) {
		return t.SecretsManager.PutSecretValue(ctx, in, optFns...)
	})
}

func (t *throttledSM) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	return retryThrottled(ctx, t, func() (*secretsmanager.UpdateSecretVersionStageOutput, error) {
		return t.SecretsManager.UpdateSecretVersionStage(ctx, in, optFns...)
	})
}

func (t *throttledSM) RotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error) {
	return retryThrottled(ctx, t, func() (*secretsmanager.RotateSecretOutput, error) {
		return t.SecretsManager.RotateSecret(ctx, in, optFns...)
	})
}

func (t *throttledSM) TagResource(ctx context.Context, in *secretsmanager.TagResourceInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error) {
	return retryThrottled(ctx, t, func() (*secretsmanager.TagResourceOutput, error) {
		t.tags.Add(1)
		return t.SecretsManager.TagResource(ctx, in, optFns...)
	})
}

func (t *throttledSM) ListSecrets(ctx context.Context, in *secretsmanager.ListSecretsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error) {
	return retryThrottled(ctx, t, func() (*secretsmanager.ListSecretsOutput, error) {
		return t.SecretsManager.ListSecrets(ctx, in, optFns...)
	})
}

func (t *throttledSM) ListSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error) {
	return retryThrottled(ctx, t, func() (*secretsmanager.ListSecretVersionIdsOutput, error) {
		return t.SecretsManager.ListSecretVersionIds(ctx, in, optFns...)
	})
}
