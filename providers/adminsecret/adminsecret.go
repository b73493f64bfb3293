// Package adminsecret reads management credentials (a vendor admin key, a
// Twilio auth token) from the Secrets Manager secret named by a managed
// secret's admin_secret_id field. The value of such a secret is
// {"key": "...", "key_id": "..."}; key_id is optional.
package adminsecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/providers"
)

// SecretsManager is the one call the reader makes.
type SecretsManager interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Credential is a management credential.
type Credential struct {
	Key   string
	KeyID string
}

// String never shows the key.
func (c Credential) String() string {
	return "adminsecret.Credential{key_id=" + c.KeyID + " key=<redacted>}"
}

// GoString is String.
func (c Credential) GoString() string { return c.String() }

// Reader reads management credentials. It caches nothing: a rotated admin
// credential is used at the next call.
type Reader struct {
	SM SecretsManager
}

// Read returns the management credential named by owner's admin_secret_id.
// op names the vendor operation for errors.
func (r Reader) Read(ctx context.Context, op string, owner providers.Credential) (Credential, error) {
	id, err := owner.RequireAttr(op, providers.FieldAdminSecretID)
	if err != nil {
		return Credential{}, err
	}
	out, err := r.SM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("admin secret %s does not exist", id))
		}
		return Credential{}, providers.E(op, providers.KindOf(err), fmt.Errorf("read admin secret %s: %w", id, err))
	}
	var v struct {
		Key   string `json:"key"`
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &v); err != nil || v.Key == "" {
		return Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("admin secret %s is not a JSON object with a \"key\" field", id))
	}
	return Credential{Key: v.Key, KeyID: v.KeyID}, nil
}
