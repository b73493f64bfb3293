package function

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
)

func TestCloudWatchProtocol(t *testing.T) {
	cases := []struct {
		name, setting, global, cloudwatch string
		query                             bool
	}{
		{"AWS: the SDK default", "", "", "", false},
		{"moto via AWS_ENDPOINT_URL", "", "http://127.0.0.1:5000", "", true},
		{"moto via the service variable", "", "", "http://localhost:5000", true},
		{"a remote endpoint keeps the default", "", "https://monitoring.eu-west-1.amazonaws.com", "", false},
		{"forced query", "query", "", "", true},
		{"forced default on loopback", "default", "http://127.0.0.1:5000", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("AWS_ENDPOINT_URL", c.global)
			t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", c.cloudwatch)
			t.Setenv("AWS_REGION", "us-east-1")
			cfg, err := config.LoadDefaultConfig(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			env := func(k string) string {
				if k == CloudWatchProtocolEnv {
					return c.setting
				}
				return ""
			}
			p := NewCloudWatch(env, cfg).Options().Protocol
			_, isQuery := p.(*awsquery.Protocol)
			if isQuery != c.query {
				t.Fatalf("protocol %s, want query=%v", fmt.Sprintf("%T", p), c.query)
			}
		})
	}
}
