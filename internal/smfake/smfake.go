// Package smfake is an in-memory Secrets Manager with versions and staging
// labels that behaves like AWS for the calls keyrotor makes, for fast unit
// tests of the rotation engine and the revoker. Integration tests use moto.
package smfake

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

type version struct {
	value   *string
	stages  map[string]bool
	created time.Time
}

type secret struct {
	name, arn       string
	rotationEnabled *bool
	tags            []smtypes.Tag
	versions        map[string]*version
	order           []string
}

// SM is the fake. Its zero value is not usable; use New.
type SM struct {
	mu      sync.Mutex
	secrets map[string]*secret
	// Before, when set, runs before every call with the operation name
	// ("DescribeSecret", ...); an error it returns fails the call before it
	// changes anything. After runs after a call succeeded; an error it
	// returns is returned although the call took effect (a lost response).
	Before func(op string) error
	After  func(op string) error
	// PageSize is the most versions a ListSecretVersionIds page holds when
	// the call sets no MaxResults (default 100), to test pagination.
	PageSize int
	// Now is the clock that dates versions (CreatedDate); default time.Now.
	Now func() time.Time
	// Region and Suffix go into the ARNs of secrets created next (default
	// us-east-1 and AbCdEf), to test secrets of one name in two regions or
	// a secret re-created under its old name.
	Region, Suffix string
	calls          map[string]int
}

func (f *SM) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// New returns an empty fake.
func New() *SM { return &SM{secrets: map[string]*secret{}, calls: map[string]int{}} }

// Create adds a secret whose first version (id "v1") holds value as AWSCURRENT.
// An empty value creates a secret with no version.
func (f *SM) Create(name, value string, tags map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	region, suffix := f.Region, f.Suffix
	if region == "" {
		region = "us-east-1"
	}
	if suffix == "" {
		suffix = "AbCdEf"
	}
	s := &secret{name: name, arn: "arn:aws:secretsmanager:" + region + ":123456789012:secret:" + name + "-" + suffix, versions: map[string]*version{}}
	for k, v := range tags {
		s.tags = append(s.tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if value != "" {
		s.versions["v1"] = &version{value: aws.String(value), stages: map[string]bool{"AWSCURRENT": true}, created: f.now()}
		s.order = append(s.order, "v1")
	}
	f.secrets[name] = s
	return s.arn
}

// SetRotationEnabled sets RotationEnabled as DescribeSecret reports it.
func (f *SM) SetRotationEnabled(name string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets[name].rotationEnabled = aws.Bool(on)
}

// StartRotation does what Secrets Manager does before it invokes
// createSecret: a new version id labelled AWSPENDING, with no value.
func (f *SM) StartRotation(name, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	for _, v := range s.versions {
		delete(v.stages, "AWSPENDING")
	}
	s.versions[token] = &version{stages: map[string]bool{"AWSPENDING": true}, created: f.now()}
	s.order = append(s.order, token)
}

// Stages returns the labels of each version (versions without labels omitted).
func (f *SM) Stages(name string) map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.secrets[name].stagesMap()
}

// Value returns the value of a version ("" if none).
func (f *SM) Value(name, versionID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := f.secrets[name].versions[versionID]; v != nil && v.value != nil {
		return *v.value
	}
	return ""
}

// Calls returns how many times op was called.
func (f *SM) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// TotalCalls returns the number of calls of every operation.
func (f *SM) TotalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func (s *secret) stagesMap() map[string][]string {
	out := map[string][]string{}
	for _, id := range s.order {
		v := s.versions[id]
		var st []string
		for _, l := range []string{"AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"} {
			if v.stages[l] {
				st = append(st, l)
			}
		}
		for l := range v.stages {
			if l != "AWSCURRENT" && l != "AWSPENDING" && l != "AWSPREVIOUS" {
				st = append(st, l)
			}
		}
		if len(st) > 0 {
			out[id] = st
		}
	}
	return out
}

func (f *SM) begin(op, id string) (*secret, error) {
	f.calls[op]++
	if f.Before != nil {
		if err := f.Before(op); err != nil {
			return nil, err
		}
	}
	for _, s := range f.secrets {
		if s.name == id || s.arn == id {
			return s, nil
		}
	}
	return nil, &smtypes.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}
}

func (f *SM) end(op string) error {
	if f.After != nil {
		return f.After(op)
	}
	return nil
}

// DescribeSecret implements the API call.
func (f *SM) DescribeSecret(_ context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.begin("DescribeSecret", aws.ToString(in.SecretId))
	if err != nil {
		return nil, err
	}
	out := &secretsmanager.DescribeSecretOutput{Name: aws.String(s.name), ARN: aws.String(s.arn), RotationEnabled: s.rotationEnabled,
		Tags: append([]smtypes.Tag(nil), s.tags...), VersionIdsToStages: s.stagesMap()}
	return out, f.end("DescribeSecret")
}

// GetSecretValue implements the API call.
func (f *SM) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.begin("GetSecretValue", aws.ToString(in.SecretId))
	if err != nil {
		return nil, err
	}
	id := aws.ToString(in.VersionId)
	stage := aws.ToString(in.VersionStage)
	if id == "" && stage == "" {
		stage = "AWSCURRENT"
	}
	if id == "" {
		for vid, v := range s.versions {
			if v.stages[stage] {
				id = vid
			}
		}
	}
	v := s.versions[id]
	if v == nil || (stage != "" && !v.stages[stage]) || v.value == nil {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String(fmt.Sprintf("Secrets Manager can't find the specified secret value for VersionId: %s, staging label: %s", id, stage))}
	}
	out := &secretsmanager.GetSecretValueOutput{Name: aws.String(s.name), ARN: aws.String(s.arn), VersionId: aws.String(id), SecretString: v.value,
		CreatedDate: aws.Time(v.created)}
	return out, f.end("GetSecretValue")
}

// PutSecretValue implements the API call, including its idempotency on the
// token: the same value is a no-op, another value fails.
func (f *SM) PutSecretValue(_ context.Context, in *secretsmanager.PutSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.begin("PutSecretValue", aws.ToString(in.SecretId))
	if err != nil {
		return nil, err
	}
	id := aws.ToString(in.ClientRequestToken)
	stages := in.VersionStages
	if len(stages) == 0 {
		stages = []string{"AWSCURRENT"}
	}
	if v, ok := s.versions[id]; ok && v.value != nil {
		if *v.value != aws.ToString(in.SecretString) {
			return nil, &smtypes.ResourceExistsException{Message: aws.String("You can't modify an existing version, you can only create a new version.")}
		}
		return &secretsmanager.PutSecretValueOutput{ARN: aws.String(s.arn), VersionId: aws.String(id)}, f.end("PutSecretValue")
	}
	v := s.versions[id]
	if v == nil {
		v = &version{stages: map[string]bool{}, created: f.now()}
		s.versions[id] = v
		s.order = append(s.order, id)
	}
	v.value = aws.String(aws.ToString(in.SecretString))
	hasCurrent := false
	for _, o := range s.versions {
		if o.stages["AWSCURRENT"] && o != v {
			hasCurrent = true
		}
	}
	for _, l := range stages {
		s.moveLabel(l, id)
	}
	if !hasCurrent {
		v.stages["AWSCURRENT"] = true
	}
	return &secretsmanager.PutSecretValueOutput{ARN: aws.String(s.arn), VersionId: aws.String(id), VersionStages: stages}, f.end("PutSecretValue")
}

func (s *secret) moveLabel(label, to string) {
	for id, v := range s.versions {
		if id != to && v.stages[label] {
			delete(v.stages, label)
			if label == "AWSCURRENT" {
				for _, o := range s.versions {
					delete(o.stages, "AWSPREVIOUS")
				}
				v.stages["AWSPREVIOUS"] = true
			}
		}
	}
	s.versions[to].stages[label] = true
}

// UpdateSecretVersionStage implements the API call with AWS's checks:
// moving a label that sits elsewhere needs RemoveFromVersionId, and moving
// AWSCURRENT moves AWSPREVIOUS to the version it left.
func (f *SM) UpdateSecretVersionStage(_ context.Context, in *secretsmanager.UpdateSecretVersionStageInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.begin("UpdateSecretVersionStage", aws.ToString(in.SecretId))
	if err != nil {
		return nil, err
	}
	label := aws.ToString(in.VersionStage)
	from, to := aws.ToString(in.RemoveFromVersionId), aws.ToString(in.MoveToVersionId)
	holder := ""
	for id, v := range s.versions {
		if v.stages[label] {
			holder = id
		}
	}
	if from != "" && holder != from {
		return nil, &smtypes.InvalidParameterException{Message: aws.String(fmt.Sprintf("label %s is not on version %s", label, from))}
	}
	if to != "" {
		if s.versions[to] == nil {
			return nil, &smtypes.ResourceNotFoundException{Message: aws.String("no version " + to)}
		}
		if holder != "" && holder != to && from == "" {
			return nil, &smtypes.InvalidParameterException{Message: aws.String("the label is on another version: give RemoveFromVersionId")}
		}
		s.moveLabel(label, to)
	} else if from != "" {
		delete(s.versions[from].stages, label)
	}
	return &secretsmanager.UpdateSecretVersionStageOutput{ARN: aws.String(s.arn), Name: aws.String(s.name)}, f.end("UpdateSecretVersionStage")
}

// ListSecretVersionIds implements the API call: the versions in creation
// order, those without labels only with IncludeDeprecated, by pages of
// MaxResults (or PageSize) linked by NextToken.
func (f *SM) ListSecretVersionIds(_ context.Context, in *secretsmanager.ListSecretVersionIdsInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.begin("ListSecretVersionIds", aws.ToString(in.SecretId))
	if err != nil {
		return nil, err
	}
	stages := s.stagesMap()
	var all []smtypes.SecretVersionsListEntry
	for _, id := range s.order {
		st, labelled := stages[id]
		if !labelled && !aws.ToBool(in.IncludeDeprecated) {
			continue
		}
		all = append(all, smtypes.SecretVersionsListEntry{VersionId: aws.String(id), VersionStages: st, CreatedDate: aws.Time(s.versions[id].created)})
	}
	size := int(aws.ToInt32(in.MaxResults))
	if size <= 0 {
		size = f.PageSize
	}
	if size <= 0 {
		size = 100
	}
	start := 0
	if t := aws.ToString(in.NextToken); t != "" {
		if start, err = strconv.Atoi(t); err != nil || start < 0 || start > len(all) {
			return nil, &smtypes.InvalidNextTokenException{Message: aws.String("invalid NextToken")}
		}
	}
	end := min(start+size, len(all))
	out := &secretsmanager.ListSecretVersionIdsOutput{ARN: aws.String(s.arn), Name: aws.String(s.name), Versions: all[start:end]}
	if end < len(all) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, f.end("ListSecretVersionIds")
}

// Tag sets a tag (for tests of tag-driven behaviour).
func (f *SM) Tag(name, key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	for i, t := range s.tags {
		if aws.ToString(t.Key) == key {
			s.tags[i].Value = aws.String(value)
			return
		}
	}
	s.tags = append(s.tags, smtypes.Tag{Key: aws.String(key), Value: aws.String(value)})
}
