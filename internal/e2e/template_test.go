package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/keyrotor/keyrotor/infra/local"
	"github.com/keyrotor/keyrotor/internal/templatecheck"
	"github.com/keyrotor/keyrotor/internal/testenv"
)

// notCreatedByMoto are the resource types of template.yaml that moto's
// CloudFormation does not create, and the template check that covers each
// instead (docs/operations.md, "Try the deploy locally"). A type missing
// here fails TestTemplateStackRotatesAndRevokes: say which check covers it.
var notCreatedByMoto = map[string][]string{
	"AWS::CloudWatch::Alarm":                {"alarms-have-actions", "design-conditions-alarmed", "alarm-metrics-are-emitted", "alarmed-metrics-on-dashboard", "auditor-heartbeat-follows-schedule", "auth-failures-anomaly-alarmed"},
	"AWS::SQS::QueuePolicy":                 {"revocation-queue-send-restricted", "TestForgedRevocationMessageRevokesNothing"},
	"AWS::SNS::TopicPolicy":                 {"(cfn-lint only: no template check reads it yet)"},
	"AWS::SNS::Subscription":                {"(cfn-lint only: no template check reads it yet)"},
	"AWS::SecretsManager::Secret":           {"(the example secret only; TestTemplateStackRotatesAndRevokes creates its own secret as an operator does)"},
	"AWS::SecretsManager::RotationSchedule": {"(the example secret only; the test configures rotation with the stack's GatewayRotationFunctionArn output)"},
}

// TestTemplateStackRotatesAndRevokes deploys the transformed template.yaml
// into moto's CloudFormation and rotates a gateway secret through the
// stack's gateway rotation function (its ARN from the stack's outputs), then
// lets the stack's event-source mapping feed the old key's revocation to
// the stack's revoker: function names, environment and timeouts as moto's
// Lambda holds them, the queue and batch size as the mapping names them.
func TestTemplateStackRotatesAndRevokes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	if err := templateScenario(t, transformedTemplate(t)); err != nil {
		t.Fatal(err)
	}
}

// TestTemplateStackWithoutQueueURLFails is the same scenario on a template
// whose gateway rotation function lost REVOCATION_QUEUE_URL, so that no
// revocation can be queued and the old key would stay live forever: the
// scenario must fail (today finishSecret refuses to finish the rotation; if
// it did not, the empty queue would fail the scenario).
func TestTemplateStackWithoutQueueURLFails(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	var tpl map[string]any
	if err := json.Unmarshal(transformedTemplate(t), &tpl); err != nil {
		t.Fatal(err)
	}
	fn := tpl["Resources"].(map[string]any)["GatewayRotationFunction"].(map[string]any)
	vars := fn["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	if _, ok := vars["REVOCATION_QUEUE_URL"]; !ok {
		t.Fatal("the gateway rotation function has no REVOCATION_QUEUE_URL to drop")
	}
	delete(vars, "REVOCATION_QUEUE_URL")
	mutated, err := json.Marshal(tpl)
	if err != nil {
		t.Fatal(err)
	}
	err = templateScenario(t, mutated)
	if err == nil || !strings.Contains(err.Error(), "revocation queue") {
		t.Fatalf("the scenario on a template without the gateway function's REVOCATION_QUEUE_URL: %v; want it to fail for want of the revocation queue", err)
	}
	t.Logf("the scenario failed as it should: %v", err)
}

func transformedTemplate(t *testing.T) []byte {
	t.Helper()
	root, err := local.FindRepoRoot("")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := templatecheck.TransformJSON(filepath.Join(root, "internal", "templatecheck", "transform.py"), filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return raw[0]
}

// templateScenario deploys template and runs a rotation and a revocation
// through it; it returns what went wrong (t only logs and cleans up).
func templateScenario(t *testing.T, template []byte) error {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const grace = 2 * time.Second
	ts, err := local.DeployTemplate(c, local.TemplateOptions{
		Template: template,
		Parameters: map[string]string{
			"GracePeriod":        grace.String(),
			"MaxRevocationDelay": "1ms",
		},
		Run: []string{"GatewayRotationFunction", "RevokerFunction"},
	})
	if err != nil {
		return err
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range ts.FunctionNames() {
				l := ts.Function(n).Logs()
				if len(l) > 3000 {
					l = l[len(l)-3000:]
				}
				t.Logf("--- %s (end of its logs) ---\n%s", n, l)
			}
		}
		if err := ts.Stop(); err != nil {
			t.Errorf("stop the template stack: %v", err)
		}
	})

	// What moto's CloudFormation skipped must be covered elsewhere.
	t.Logf("not created by moto's CloudFormation: %s", strings.Join(ts.NotCreated, ", "))
	for _, nc := range ts.NotCreated {
		typ := nc[strings.Index(nc, ": ")+2:]
		if _, ok := notCreatedByMoto[typ]; !ok {
			return fmt.Errorf("moto's CloudFormation does not create %s: add its type to notCreatedByMoto with the template check that covers it, and to docs/operations.md", nc)
		}
	}

	// The function the operator is told to use (the stack's output) is the
	// one that runs, under the stack's name.
	gw, rev := ts.Function("gateway"), ts.Function("revoker")
	arn := ts.Outputs["GatewayRotationFunctionArn"]
	if arn == "" || arn != gw.ARN {
		return fmt.Errorf("output GatewayRotationFunctionArn = %q, want the stack's gateway rotation function %s", arn, gw.ARN)
	}
	if len(ts.Mappings) != 1 {
		return fmt.Errorf("the stack has %d event-source mappings, want 1 (the revoker's)", len(ts.Mappings))
	}
	m := ts.Mappings[0]
	if aws.ToString(m.FunctionArn) != rev.ARN {
		return fmt.Errorf("the event-source mapping feeds %s, want the revoker %s", aws.ToString(m.FunctionArn), rev.ARN)
	}
	queueURL := ts.Outputs["RevocationQueueUrl"]
	if !strings.HasSuffix(aws.ToString(m.EventSourceArn), ":"+queueURL[strings.LastIndex(queueURL, "/")+1:]) {
		return fmt.Errorf("the event-source mapping reads %s, want the revocation queue %s", aws.ToString(m.EventSourceArn), queueURL)
	}

	// An operator's first gateway secret, as docs/operations.md onboards
	// one: the admin secret under the template's AdminSecretPrefix, bound to
	// the managed secrets it serves, and no grace-period tag (the stack's
	// GRACE_PERIOD applies).
	const admin, secret = "keyrotor/admin/gateway", "e2e/template/gateway"
	sm := ts.SecretsManager()
	if err := ts.CreateAdminSecret(c, admin, "e2e/template/*"); err != nil {
		return err
	}
	value, _ := json.Marshal(map[string]string{"provider": "gateway", "admin_secret_id": admin})
	if _, err := sm.CreateSecret(c, &secretsmanager.CreateSecretInput{
		Name:         aws.String(secret),
		SecretString: aws.String(string(value)),
		Tags:         []smtypes.Tag{{Key: aws.String("keyrotor:managed"), Value: aws.String("true")}},
	}); err != nil {
		return err
	}
	if _, err := sm.RotateSecret(c, &secretsmanager.RotateSecretInput{
		SecretId:          aws.String(secret),
		RotationLambdaARN: aws.String(arn),
		RotationRules:     &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)},
	}); err != nil {
		return fmt.Errorf("the first rotation (its first key) through the stack's function: %w", err)
	}
	old, err := ts.ReadKey(c, secret, "AWSCURRENT")
	if err != nil {
		return err
	}
	if _, err := sm.RotateSecret(c, &secretsmanager.RotateSecretInput{SecretId: aws.String(secret)}); err != nil {
		return fmt.Errorf("the second rotation through the stack's function: %w", err)
	}
	cur, err := ts.ReadKey(c, secret, "AWSCURRENT")
	if err != nil {
		return err
	}
	if cur.KeyID == "" || cur.KeyID == old.KeyID {
		return fmt.Errorf("after the rotation AWSCURRENT is %s, want a new key (the old one is %s)", cur, old)
	}

	// finishSecret queued the old key's revocation, delayed by the grace
	// period, before RotateSecret returned; nothing polls the queue yet.
	attrs, err := sqs.NewFromConfig(ts.Config()).GetQueueAttributes(c, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return fmt.Errorf("read the revocation queue: %w", err)
	}
	queued := 0
	for _, v := range attrs.Attributes {
		n, _ := strconv.Atoi(v)
		queued += n
	}
	if queued != 1 {
		return fmt.Errorf("the gateway function queued no revocation of the old key %s on the stack's revocation queue (%d messages; is its REVOCATION_QUEUE_URL set?)", old.KeyID, queued)
	}

	if err := ts.StartMappings(c); err != nil {
		return err
	}
	if got, want := ts.Pollers[0].BatchSize, aws.ToInt32(m.BatchSize); got != want || want == 0 {
		return fmt.Errorf("the poller takes batches of %d, the mapping says %d", got, want)
	}
	wc, wcancel := context.WithTimeout(c, grace+90*time.Second)
	defer wcancel()
	if err := ts.WaitRevoked(wc, old.KeyID); err != nil {
		return fmt.Errorf("the stack's revoker did not revoke the old key (poller: %+v): %w", ts.Pollers[0].Stats(), err)
	}
	for _, k := range []struct {
		key  local.KeyVersion
		want int
	}{{old, 401}, {cur, 200}} {
		code, err := ts.Ping(c, k.key.Key)
		if err != nil {
			return err
		}
		if code != k.want {
			return fmt.Errorf("%s: the gateway answered %d after the revocation, want %d", k.key, code, k.want)
		}
	}
	// The key is revoked during the revoker's invoke; the poller deletes the
	// message once the invoke returns (after the revoker published its event).
	for deadline := time.Now().Add(30 * time.Second); ts.Pollers[0].Stats().Deleted == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if st := ts.Pollers[0].Stats(); st.Deleted != 1 || st.Failed != 0 {
		return fmt.Errorf("the poller's stats after the revocation: %+v, want one message handled and none failed", st)
	}
	for v, stages := range testenv.Stages(t, sm, secret) {
		if slices.Contains(stages, "AWSPENDING") {
			return fmt.Errorf("AWSPENDING left on version %s", v)
		}
	}
	return nil
}
