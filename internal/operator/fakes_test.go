package operator

import (
	"context"
	"errors"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/revocation"
)

const fakeQueueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/keyrotor-revocations"

// fakeLambda answers GetFunctionConfiguration for every function with one
// configuration; err fails the call. calls counts them.
type fakeLambda struct {
	timeout int32
	env     map[string]string
	err     error
	calls   int
}

func (f *fakeLambda) GetFunctionConfiguration(_ context.Context, in *lambda.GetFunctionConfigurationInput, _ ...func(*lambda.Options)) (*lambda.GetFunctionConfigurationOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &lambda.GetFunctionConfigurationOutput{FunctionArn: in.FunctionName, Timeout: aws.Int32(f.timeout),
		Environment: &lambdatypes.EnvironmentResponse{Variables: f.env}}, nil
}

// fakeSQS keeps the revocation messages sent to it, with their delays.
type fakeSQS struct {
	mu     sync.Mutex
	msgs   []revocation.Message
	urls   []string
	delays []int32
}

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := revocation.Decode(aws.ToString(in.MessageBody))
	if err != nil {
		return nil, err
	}
	f.msgs = append(f.msgs, m)
	f.urls = append(f.urls, aws.ToString(in.QueueUrl))
	f.delays = append(f.delays, in.DelaySeconds)
	return &sqs.SendMessageOutput{MessageId: aws.String("m")}, nil
}

// fakeIAM holds IAM users' tags; a user not in tags does not exist.
type fakeIAM struct {
	tags map[string]map[string]string
}

func (f *fakeIAM) ListUserTags(_ context.Context, in *iam.ListUserTagsInput, _ ...func(*iam.Options)) (*iam.ListUserTagsOutput, error) {
	tags, ok := f.tags[aws.ToString(in.UserName)]
	if !ok {
		return nil, &iamtypes.NoSuchEntityException{Message: aws.String("no such user")}
	}
	out := &iam.ListUserTagsOutput{}
	for k, v := range tags {
		out.Tags = append(out.Tags, iamtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out, nil
}

var errDenied = errors.New("AccessDeniedException: not authorized")
