package function

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/keyrotor/keyrotor/audit"
)

// CloudWatchProtocolEnv selects the CloudWatch wire protocol: "query" forces
// the awsquery protocol, "default" keeps the SDK's. Unset, the query
// protocol is used only when CloudWatch's endpoint is on a loopback host (the
// local stack's moto_server, which does not speak the SDK's default CBOR
// protocol); on AWS the SDK default stays.
const CloudWatchProtocolEnv = "CLOUDWATCH_PROTOCOL"

// NewCloudWatch builds the CloudWatch client for cfg, with the protocol
// CloudWatchProtocolEnv and the endpoint select. The option runs once the
// SDK has resolved the endpoint (cfg's or AWS_ENDPOINT_URL_CLOUDWATCH), so
// the client is built once.
func NewCloudWatch(env Env, cfg aws.Config) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		if useQueryProtocol(env(CloudWatchProtocolEnv), aws.ToString(o.BaseEndpoint)) {
			o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801)
		}
	})
}

func useQueryProtocol(setting, endpoint string) bool {
	switch setting {
	case "query":
		return true
	case "default":
		return false
	}
	if endpoint == "" {
		return false
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// newAuditor builds the auditor over cfg from the environment
// (METRICS_NAMESPACE): its only clients are Secrets Manager and CloudWatch.
func newAuditor(env Env, cfg aws.Config, log *slog.Logger) *audit.Auditor {
	return audit.New(secretsmanager.NewFromConfig(cfg), NewCloudWatch(env, cfg), audit.Options{
		Namespace: env("METRICS_NAMESPACE"),
		Logger:    log,
	})
}

// StartAuditor is the auditor's main.
func StartAuditor() {
	ctx := context.Background()
	log := logger(os.Getenv, os.Stderr)
	cfg, err := loadConfig(ctx)
	if err != nil {
		fail(log, err)
	}
	lambda.Start(newAuditor(os.Getenv, cfg, log).Handle)
}
