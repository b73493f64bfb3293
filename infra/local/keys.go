package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// KeyVersion is the key one version of a managed secret holds. String,
// GoString and LogValue never show Key, and encoding/json leaves it out.
type KeyVersion struct {
	VersionID string `json:"version_id"`
	KeyID     string `json:"key_id,omitempty"`
	Key       string `json:"-"`
}

// String describes k without its key.
func (k KeyVersion) String() string {
	return fmt.Sprintf("version %s key_id %s", short(k.VersionID), k.KeyID)
}

// GoString is String, so %#v does not print the key either.
func (k KeyVersion) GoString() string { return k.String() }

// LogValue lets slog log a KeyVersion without its key.
func (k KeyVersion) LogValue() slog.Value {
	return slog.GroupValue(slog.String("version_id", k.VersionID), slog.String("key_id", k.KeyID))
}

// String describes s by its endpoints, so that printing a Stack by mistake
// does not print the gateway's admin token (an unexported field fmt would
// otherwise show).
func (s *Stack) String() string {
	return fmt.Sprintf("local.Stack{endpoint=%s gateway=%s}", s.Endpoint, s.GatewayURL)
}

// GoString is String, so %#v does not print the admin token either.
func (s *Stack) GoString() string { return s.String() }

// LogValue lets slog log a Stack by its endpoints only.
func (s *Stack) LogValue() slog.Value {
	return slog.GroupValue(slog.String("endpoint", s.Endpoint), slog.String("gateway", s.GatewayURL))
}

// ReadKey reads a key in the first region, as RegionStack.ReadKey does.
func (s *Stack) ReadKey(ctx context.Context, secretID, stage string) (KeyVersion, error) {
	return s.primary().ReadKey(ctx, secretID, stage)
}

// ReadKey reads the key of secretID's version labelled stage (AWSCURRENT,
// AWSPREVIOUS) in the region, always with an explicit stage (moto's default
// version can be stale).
func (r *RegionStack) ReadKey(ctx context.Context, secretID, stage string) (KeyVersion, error) {
	out, err := r.clients.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(secretID), VersionStage: aws.String(stage),
	})
	if err != nil {
		return KeyVersion{}, fmt.Errorf("read %s of %s in %s: %w", stage, secretID, r.Name, err)
	}
	var v struct {
		Key   string `json:"key"`
		KeyID string `json:"key_id"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &v); err != nil {
		return KeyVersion{}, fmt.Errorf("read %s of %s: the value is not a JSON object", stage, secretID)
	}
	return KeyVersion{VersionID: aws.ToString(out.VersionId), KeyID: v.KeyID, Key: v.Key}, nil
}

// pingClient calls the gateway's data plane.
var pingClient = &http.Client{Timeout: 30 * time.Second}

// Ping calls the reference gateway's GET /v1/ping with key as the bearer
// token and returns the status: 200 for a live key, 401 otherwise.
func (s *Stack) Ping(ctx context.Context, key string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.GatewayURL+"/v1/ping", nil)
	if err != nil {
		return 0, fmt.Errorf("ping the gateway: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := pingClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("ping the gateway: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// WaitRevoked waits until the gateway no longer holds key keyID, or ctx
// ends.
func (s *Stack) WaitRevoked(ctx context.Context, keyID string) error {
	for {
		live := false
		for _, k := range s.Gateway.LiveKeys() {
			if k.ID == keyID {
				live = true
			}
		}
		if !live {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the revocation of %s: %w", keyID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// LiveKeys returns the gateway's live keys minted for the secret secretName
// (their names start with keyrotor.KeyNamePrefix of its identity), oldest
// first; none when the secret cannot be described.
func (s *Stack) LiveKeys(secretName string) []gateway.ServerKey {
	desc, err := s.SecretsManager().DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(secretName)})
	if err != nil {
		return nil
	}
	id, err := keyrotor.ParseARN(aws.ToString(desc.ARN))
	if err != nil {
		return nil
	}
	prefix := keyrotor.KeyNamePrefix(id)
	var out []gateway.ServerKey
	for _, k := range s.Gateway.LiveKeys() {
		if strings.HasPrefix(k.Name, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// AccessKeyIDs returns the ids of IAM user userName's access keys in moto,
// sorted.
func (s *Stack) AccessKeyIDs(ctx context.Context, userName string) ([]string, error) {
	out, err := s.primary().clients.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(userName)})
	if err != nil {
		return nil, fmt.Errorf("list the access keys of %s: %w", userName, err)
	}
	var ids []string
	for _, k := range out.AccessKeyMetadata {
		ids = append(ids, aws.ToString(k.AccessKeyId))
	}
	sort.Strings(ids)
	return ids, nil
}
