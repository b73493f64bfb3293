package templatecheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/client"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/notify"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// emitted are the metric names keyrotor's code publishes.
var emitted = map[string]bool{}

func init() {
	for _, n := range []string{
		rotation.MetricStepSucceeded, rotation.MetricStepFailed, rotation.MetricStepDuration,
		rotation.MetricRotationSucceeded, rotation.MetricRotationFailed, rotation.MetricVendorAuthFailures,
		revocation.MetricRevoked, revocation.MetricSkipped, revocation.MetricDeferred, revocation.MetricFailed,
		revocation.MetricOldKeyInUse, revocation.MetricVendorAuthFailures,
		revocation.MetricRefused, revocation.MetricAbandoned, revocation.MetricAlreadyGone,
		rotation.MetricUnownedKeys, rotation.MetricAbandonedKeys,
		audit.MetricKeyAgeDays, audit.MetricKeyAgeRatio, audit.MetricManagedSecrets, audit.MetricMaxKeyAgeRatio,
		audit.MetricStuckRotations, audit.MetricRotationDisabled, audit.MetricRotationOverdue, audit.MetricAuditorHeartbeat,
		client.MetricAuthFailures, // written by the applications' Go client, in the same namespace by default
	} {
		emitted[n] = true
	}
}

// actions are the IAM actions of the methods of an interface over one AWS
// service (the rotation engine's and the operator's Secrets Manager, the
// event publisher's EventBridge): a call added there must be granted too.
func actions[I any](service string) []string {
	typ := reflect.TypeFor[I]()
	var out []string
	for i := range typ.NumMethod() {
		out = append(out, service+":"+typ.Method(i).Name)
	}
	return out
}

func paths(t *testing.T) (root, template, script string) {
	root = testenv.RepoRoot(t)
	return root, filepath.Join(root, "template.yaml"), filepath.Join(root, "internal", "templatecheck", "transform.py")
}

func inputs(t *testing.T, root string) Inputs {
	targets, err := MakeTargets(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) == 0 {
		t.Fatal("the Makefile has no build-<LogicalId> target")
	}
	return Inputs{MakeTargets: targets, EmittedMetrics: emitted,
		RotationSecretActions: actions[rotation.SecretsManager]("secretsmanager"), OperatorSecretActions: actions[operator.SecretsManager]("secretsmanager"),
		EventActions: actions[notify.EventBridge]("events"), ScheduleInterval: audit.ScheduleInterval}
}

func TestCfnLintClean(t *testing.T) {
	if testing.Short() {
		t.Skip("cfn-lint takes seconds; make test and make lint run it")
	}
	if _, err := exec.LookPath("cfn-lint"); err != nil {
		t.Fatal("cfn-lint is not installed (see README: the project's machines have it)")
	}
	_, tpl, _ := paths(t)
	out, err := exec.Command("cfn-lint", tpl).CombinedOutput()
	if err != nil {
		t.Fatalf("cfn-lint template.yaml: %v\n%s", err, out)
	}
}

func TestTemplatePassesEveryCheck(t *testing.T) {
	root, tpl, script := paths(t)
	out, err := Transform(script, tpl)
	if err != nil {
		t.Fatal(err)
	}
	in := inputs(t, root)
	for _, c := range Checks {
		t.Run(c.Name, func(t *testing.T) {
			if p := c.Run(out[0], in); len(p) > 0 {
				t.Fatalf("template.yaml:\n%s", strings.Join(p, "\n"))
			}
		})
	}
	// The Makefile names the functions DESIGN §9 fixes.
	for _, id := range []string{"GatewayRotationFunction", "IamRotationFunction", "ApiGatewayRotationFunction", "SendgridRotationFunction",
		"TwilioRotationFunction", "DatadogRotationFunction", "CloudflareRotationFunction", "RevokerFunction", "AuditorFunction"} {
		if out[0].Resources[id].Type != "AWS::Lambda::Function" {
			t.Errorf("no function %s", id)
		}
	}
}

// mutation is an edit of template.yaml (or of the Makefile's targets) that
// one check must catch.
type mutation struct {
	name, check string
	old, new    string                // replace the first old with new in template.yaml
	targets     func(map[string]bool) // edit the Makefile's targets instead
}

var mutations = []mutation{
	{name: "a function without its Makefile target", check: "functions-have-make-targets",
		targets: func(m map[string]bool) { delete(m, "AuditorFunction") }},
	{name: "a Makefile target without its function", check: "functions-have-make-targets",
		targets: func(m map[string]bool) { m["StripeRotationFunction"] = true }},
	{name: "a function not built by the Makefile", check: "functions-have-make-targets",
		old: "BuildMethod: makefile", new: "BuildMethod: go1.x"},
	{name: "an SQS event without ReportBatchItemFailures", check: "sqs-events-report-batch-item-failures",
		old: "            FunctionResponseTypes: [ReportBatchItemFailures]\n", new: ""},
	{name: "visibility below 6 x the revoker's timeout", check: "queue-visibility-covers-timeout",
		old: "VisibilityTimeout: 720", new: "VisibilityTimeout: 719"},
	{name: "a revoker timeout that outgrows the visibility", check: "queue-visibility-covers-timeout",
		old: "      Description: Revokes old keys after their grace period (functions/revoker), fed by the revocation queue.\n      CodeUri: .\n      Timeout: 120",
		new: "      Description: Revokes old keys after their grace period (functions/revoker), fed by the revocation queue.\n      CodeUri: .\n      Timeout: 300"},
	{name: "no queue policy on the revocation queue", check: "revocation-queue-send-restricted",
		old: "            Effect: Deny\n            Principal: \"*\"\n            Action: sqs:SendMessage\n", new: "            Effect: Allow\n            Principal: \"*\"\n            Action: sqs:SendMessage\n"},
	{name: "a queue policy that denies the account everything", check: "revocation-queue-send-restricted",
		old: "            Principal: \"*\"\n            Action: sqs:SendMessage\n", new: "            Principal: \"*\"\n            Action: [sqs:SendMessage, sqs:SetQueueAttributes]\n"},
	{name: "a rotation function denied its revocations", check: "revocation-queue-send-restricted",
		old: "                      - !GetAtt TwilioRotationRole.Arn\n", new: ""},
	{name: "the auditor allowed to send revocations", check: "revocation-queue-send-restricted",
		old: "                      - !GetAtt TwilioRotationRole.Arn\n", new: "                      - !GetAtt TwilioRotationRole.Arn\n                      - !GetAtt AuditorRole.Arn\n"},
	{name: "operators unable to queue unstick's revocation", check: "revocation-queue-send-restricted",
		old: `!If [HasOperatorRoles, !Join [",", !Ref OperatorRoleArns], !GetAtt RevokerRole.Arn]`, new: "!GetAtt RevokerRole.Arn"},
	{name: "an exception by something other than the principal", check: "revocation-queue-send-restricted",
		old: "                aws:PrincipalArn: !Split\n", new: "                aws:SourceArn: !Split\n"},
	{name: "a DLQ that keeps messages no longer than the queue", check: "queues-encrypted-dlq-outlives-queue",
		old: "MessageRetentionPeriod: 1209600", new: "MessageRetentionPeriod: 345600"},
	{name: "an unencrypted queue", check: "queues-encrypted-dlq-outlives-queue",
		old: "      SqsManagedSseEnabled: true\n", new: ""},
	{name: "a Secrets Manager permission without SourceAccount", check: "permissions-name-source",
		old: "      SourceAccount: !Ref AWS::AccountId\n", new: ""},
	{name: "secret actions on *", check: "secret-actions-only-on-managed-secrets",
		old: `Resource: !Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"`, new: `Resource: "*"`},
	{name: "secret actions on every secret without the managed condition", check: "secret-actions-only-on-managed-secrets",
		old: "                StringEquals:\n                  \"aws:ResourceTag/keyrotor:managed\": \"true\"\n                  \"secretsmanager",
		new: "                StringEquals:\n                  \"secretsmanager"},
	{name: "secretsmanager:* granted", check: "secret-actions-only-on-managed-secrets",
		old: "Action: secretsmanager:ListSecrets", new: "Action: secretsmanager:*"},
	{name: "IAM key actions on every user under the path", check: "iam-actions-only-on-bound-users",
		old: "              Condition:\n                StringLike:\n                  \"iam:ResourceTag/keyrotor:secret\": !Sub \"arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*\"\n", new: ""},
	{name: "IAM key actions on users bound to any tag value", check: "iam-actions-only-on-bound-users",
		old: `"iam:ResourceTag/keyrotor:secret": !Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"`,
		new: `"iam:ResourceTag/keyrotor:secret": "*"`},
	{name: "a role acting on IAM keys that cannot read the users' tags", check: "iam-actions-only-on-bound-users",
		old: "              Action: iam:ListUserTags\n", new: "              Action: logs:CreateLogStream\n"},
	{name: "an admin secret reader that cannot read keyrotor:admin-for", check: "admin-secret-readers-read-bindings",
		old: "Action: [secretsmanager:DescribeSecret, secretsmanager:GetSecretValue]", new: "Action: secretsmanager:GetSecretValue"},
	{name: "a reader that cannot decrypt secrets under a customer-managed key", check: "kms-keys-for-secret-readers",
		old: "                Action: kms:Decrypt\n", new: "                Action: kms:DescribeKey\n"},
	{name: "a writer that cannot generate data keys", check: "kms-keys-for-secret-readers",
		old: "Action: [kms:Decrypt, kms:GenerateDataKey, kms:Encrypt]", new: "Action: [kms:Decrypt]"},
	{name: "a reader that may encrypt", check: "kms-keys-for-secret-readers",
		old: "                Action: kms:Decrypt\n", new: "                Action: [kms:Decrypt, kms:Encrypt]\n"},
	{name: "KMS keys usable outside Secrets Manager", check: "kms-keys-for-secret-readers",
		old: "                Condition:\n                  StringEquals:\n                    kms:ViaService: !Sub secretsmanager.${AWS::Region}.amazonaws.com\n", new: ""},
	{name: "KMS actions on every key", check: "kms-keys-for-secret-readers",
		old: "                Resource: !Ref KmsKeyArns\n", new: "                Resource: !Sub \"arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*\"\n"},
	{name: "KMS statements even without keys", check: "kms-keys-for-secret-readers",
		old: "            - !If\n              - HasKmsKeys\n              - Sid: UseSecretKmsKeys\n", new: "            - !If\n              - HasAlarmEmail\n              - Sid: UseSecretKmsKeys\n"},
	{name: "no KmsKeyArns parameter default", check: "kms-keys-for-secret-readers",
		old: "  KmsKeyArns:\n    Type: CommaDelimitedList\n    Default: \"\"\n", new: "  KmsKeyArns:\n    Type: CommaDelimitedList\n    Default: \"arn:aws:kms:us-east-1:111122223333:key/x\"\n"},
	{name: "PutMetricData in any namespace", check: "star-resources-only-where-required",
		old: "              Condition:\n                StringEquals:\n                  cloudwatch:namespace: !Ref MetricsNamespace\n", new: ""},
	{name: "another action on *", check: "star-resources-only-where-required",
		old: "Action: secretsmanager:ListSecrets", new: "Action: [secretsmanager:ListSecrets, iam:DeleteAccessKey]"},
	{name: "a role made by SAM, with AWS's managed policies", check: "roles-without-managed-policies",
		old: "      Role: !GetAtt RevokerRole.Arn\n", new: ""},
	{name: "a dashboard body that is not JSON", check: "dashboard-body-is-json",
		old: `"title": "Rotations",`, new: `"title": "Rotations"`},
	{name: "an alarm without an action", check: "alarms-have-actions",
		old: "      AlarmActions: [!Ref AlarmTopic]\n", new: ""},
	{name: "no key age alarm", check: "design-conditions-alarmed",
		old: "MetricName: MaxKeyAgeRatio", new: "MetricName: KeyAgeDays"},
	{name: "a key age alarm at 2 x the interval", check: "design-conditions-alarmed",
		old: "      Threshold: 1.5\n", new: "      Threshold: 2\n"},
	{name: "no rotation failure alarm", check: "design-conditions-alarmed",
		old: "MetricName: RotationFailed", new: "MetricName: RotationSucceeded"},
	{name: "a function whose errors are not alarmed", check: "design-conditions-alarmed",
		old: "                  Value: !Ref AuditorFunction", new: "                  Value: !Ref RevokerFunction"},
	{name: "no old-key-in-use alarm", check: "design-conditions-alarmed",
		old: "MetricName: OldKeyInUse", new: "MetricName: RevocationsDeferred"},
	{name: "no revocation failure alarm", check: "design-conditions-alarmed",
		old: "MetricName: RevocationsFailed", new: "MetricName: RevocationsDone"},
	{name: "no DLQ alarm", check: "design-conditions-alarmed",
		old: "Value: !GetAtt RevocationDeadLetterQueue.QueueName", new: "Value: !GetAtt RevocationQueue.QueueName"},
	{name: "no stuck rotation alarm", check: "design-conditions-alarmed",
		old: "MetricName: StuckRotations", new: "MetricName: ManagedSecrets"},
	{name: "no vendor auth failure alarm", check: "design-conditions-alarmed",
		old: "MetricName: VendorAuthFailures", new: "MetricName: StepFailed"},
	{name: "no alarm on refused revocations", check: "design-conditions-alarmed",
		old: "MetricName: RevocationsRefused", new: "MetricName: RevocationsSkipped"},
	{name: "no alarm on unowned keys", check: "design-conditions-alarmed",
		old: "MetricName: UnownedKeys", new: "MetricName: RevocationsSkipped"},
	{name: "no alarm on abandoned revocations", check: "design-conditions-alarmed",
		old: "MetricName: RevocationsAbandoned", new: "MetricName: RevocationsSkipped"},
	{name: "no alarm on abandoned keys", check: "design-conditions-alarmed",
		old: "MetricName: AbandonedKeys", new: "MetricName: RevocationsSkipped"},
	{name: "an unowned-keys alarm at 2", check: "design-conditions-alarmed",
		old: "      MetricName: UnownedKeys\n      Statistic: Sum\n      Period: 300\n      EvaluationPeriods: 1\n      Threshold: 1\n",
		new: "      MetricName: UnownedKeys\n      Statistic: Sum\n      Period: 300\n      EvaluationPeriods: 1\n      Threshold: 2\n"},
	{name: "an alarmed metric missing from the dashboard", check: "alarmed-metrics-on-dashboard",
		old: `[".", "UnownedKeys"], `, new: ""},
	{name: "an alarm on a metric nobody publishes", check: "alarm-metrics-are-emitted",
		old: "MetricName: RotationOverdue", new: "MetricName: RotationsOverdue"},
	{name: "no rule for RotationAbandoned", check: "rotation-events-notify",
		old: "eventName: [RotationFailed, RotationAbandoned]", new: "eventName: [RotationFailed]"},
	{name: "an auditor without a schedule", check: "auditor-scheduled",
		old: "      Events:\n        Audit:\n          Type: Schedule\n          Properties:\n            Schedule: !Ref AuditSchedule\n            Description: keyrotor audit of the managed secrets\n", new: ""},
	{name: "a rotation role without ListSecretVersionIds", check: "rotation-roles-grant-engine-calls",
		old: "                - secretsmanager:UpdateSecretVersionStage\n                - secretsmanager:ListSecretVersionIds\n", new: "                - secretsmanager:UpdateSecretVersionStage\n"},
	{name: "a rotation role that may not publish events", check: "functions-may-publish-events",
		old: "            - Sid: PublishEvents\n              Effect: Allow\n              Action: events:PutEvents\n",
		new: "            - Sid: PublishEvents\n              Effect: Allow\n              Action: events:DescribeEventBus\n"},
	{name: "a rotation role publishing to another bus", check: "functions-may-publish-events",
		old: "event-bus/${EventBusName}", new: "event-bus/default"},
	{name: "a revoker that may not publish events", check: "functions-may-publish-events",
		old: "              Resource: !GetAtt RevocationQueue.Arn\n            - Sid: PublishEvents\n              Effect: Allow\n              Action: events:PutEvents\n              Resource: !Sub \"arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}\"\n            # Reads only",
		new: "              Resource: !GetAtt RevocationQueue.Arn\n            # Reads only"},
	{name: "functions not told the bus", check: "functions-may-publish-events",
		old: "        EVENT_BUS_NAME: !Ref EventBusName\n", new: ""},
	{name: "no operator policy", check: "operator-policy-grants-cli-calls",
		old: "  OperatorPolicy:\n    Type: AWS::IAM::ManagedPolicy\n", new: "  OperatorPolicy:\n    Type: AWS::IAM::Policy\n"},
	{name: "an operator policy without a call the CLI makes", check: "operator-policy-grants-cli-calls",
		old: "              - secretsmanager:RotateSecret\n", new: ""},
	{name: "an operator policy without ListSecrets", check: "operator-policy-grants-cli-calls",
		old: "            Action: secretsmanager:ListSecrets\n            Resource: \"*\"\n          # Vendor calls", new: "            Action: secretsmanager:ListSecretVersionIds\n            Resource: \"*\"\n          # Vendor calls"},
	{name: "operators unable to read a rotation function's grace period", check: "operator-policy-grants-cli-calls",
		old: "            Action: [lambda:GetFunctionConfiguration, lambda:GetFunction, lambda:InvokeFunction]\n            Resource:\n                - !GetAtt GatewayRotationFunction.Arn\n",
		new: "            Action: [lambda:GetFunctionConfiguration, lambda:GetFunction, lambda:InvokeFunction]\n            Resource:\n"},
	{name: "operators unable to queue a revocation", check: "operator-policy-grants-cli-calls",
		old: "            Action: sqs:SendMessage\n            Resource: !GetAtt RevocationQueue.Arn\n          - Sid: ReadRotatedUsersTags\n",
		new: "            Action: sqs:SendMessage\n            Resource: !GetAtt RevocationDeadLetterQueue.Arn\n          - Sid: ReadRotatedUsersTags\n"},
	{name: "a heartbeat alarm that a stopped auditor leaves silent", check: "auditor-heartbeat-follows-schedule",
		old: "      ComparisonOperator: LessThanThreshold\n      TreatMissingData: breaching\n", new: "      ComparisonOperator: LessThanThreshold\n      TreatMissingData: notBreaching\n"},
	{name: "no heartbeat alarm", check: "auditor-heartbeat-follows-schedule",
		old: "MetricName: AuditorHeartbeat", new: "MetricName: ManagedSecrets"},
	{name: "a heartbeat alarm that fires while the auditor beats", check: "auditor-heartbeat-follows-schedule",
		old: "ComparisonOperator: LessThanThreshold", new: "ComparisonOperator: GreaterThanOrEqualToThreshold"},
	{name: "an hourly heartbeat period for a daily audit", check: "auditor-heartbeat-follows-schedule",
		old: "Period: !If [AuditAtLeastHourly, 3600, 86400]", new: "Period: 3600"},
	{name: "a heartbeat period beyond a day", check: "auditor-heartbeat-follows-schedule",
		old: "Period: !If [AuditAtLeastHourly, 3600, 86400]", new: "Period: !If [AuditAtLeastHourly, 3600, 172800]"},
	{name: "a heartbeat window beyond 7 days", check: "auditor-heartbeat-follows-schedule",
		old: "      EvaluationPeriods: 2\n      DatapointsToAlarm: 2\n      Threshold: 1\n      ComparisonOperator: LessThanThreshold\n",
		new: "      EvaluationPeriods: 8\n      DatapointsToAlarm: 8\n      Threshold: 1\n      ComparisonOperator: LessThanThreshold\n"},
	{name: "a heartbeat alarm on one empty period of two", check: "auditor-heartbeat-follows-schedule",
		old: "      DatapointsToAlarm: 2\n      Threshold: 1\n      ComparisonOperator: LessThanThreshold\n",
		new: "      DatapointsToAlarm: 1\n      Threshold: 1\n      ComparisonOperator: LessThanThreshold\n"},
	{name: "an hourly heartbeat for a schedule slower than hourly", check: "auditor-heartbeat-follows-schedule",
		old: `    - !Equals [!Ref AuditSchedule, "rate(30 minutes)"]`, new: `    - !Equals [!Ref AuditSchedule, "rate(3 hours)"]`},
	{name: "an auth failure alarm without its anomaly band", check: "auth-failures-anomaly-alarmed",
		old: "      ThresholdMetricId: band\n", new: "      ThresholdMetricId: failures\n"},
	{name: "an anomaly alarm on another metric than AuthFailures", check: "auth-failures-anomaly-alarmed",
		old: "              MetricName: AuthFailures\n", new: "              MetricName: ForcedRefreshes\n"},
	{name: "no anomaly alarm on vendor auth failures", check: "auth-failures-anomaly-alarmed",
		old: "              MetricName: VendorAuthFailures\n            Period: 300\n", new: "              MetricName: StepFailed\n            Period: 300\n"},
	{name: "an anomaly alarm below the band", check: "auth-failures-anomaly-alarmed",
		old: "ComparisonOperator: GreaterThanUpperThreshold", new: "ComparisonOperator: LessThanLowerThreshold"},
	{name: "a band over the band", check: "auth-failures-anomaly-alarmed",
		old: "ANOMALY_DETECTION_BAND(failures,", new: "ANOMALY_DETECTION_BAND(band,"},
	{name: "VendorAuthFailureThreshold accepted and ignored", check: "auth-failures-anomaly-alarmed",
		old: "      Threshold: !Ref VendorAuthFailureThreshold\n", new: "      Threshold: 3\n"},
	{name: "a rotation function ARN missing from the outputs", check: "rotation-function-arns-output",
		old: "    Value: !GetAtt TwilioRotationFunction.Arn\n", new: "    Value: !Ref TwilioRotationFunction\n"},
}

// TestChecksCatchMutations proves each check can fail: every mutated copy of
// the template makes its check report a problem.
func TestChecksCatchMutations(t *testing.T) {
	if testing.Short() {
		t.Skip("transforms dozens of templates")
	}
	root, tpl, script := paths(t)
	src, err := os.ReadFile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for i, m := range mutations {
		text := string(src)
		if m.targets == nil {
			if !strings.Contains(text, m.old) {
				t.Fatalf("%s: template.yaml has no %q to mutate", m.name, m.old)
			}
			text = strings.Replace(text, m.old, m.new, 1)
		}
		f := filepath.Join(dir, "template-"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+".yaml")
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	out, err := Transform(script, files...)
	if err != nil {
		t.Fatal(err)
	}
	caught := map[string]bool{}
	for i, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			in := inputs(t, root)
			if m.targets != nil {
				m.targets(in.MakeTargets)
			}
			var check Check
			for _, c := range Checks {
				if c.Name == m.check {
					check = c
				}
			}
			if check.Run == nil {
				t.Fatalf("no check %s", m.check)
			}
			if p := check.Run(out[i], in); len(p) == 0 {
				t.Fatalf("%s does not catch: %s", m.check, m.name)
			} else {
				t.Logf("%s: %s", m.check, p[0])
			}
			caught[m.check] = true
		})
	}
	for _, c := range Checks {
		if !caught[c.Name] {
			t.Errorf("no mutation shows that %s can fail", c.Name)
		}
	}
}
