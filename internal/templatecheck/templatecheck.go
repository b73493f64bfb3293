// Package templatecheck checks keyrotor's SAM template after it has been
// transformed into plain CloudFormation by aws-sam-translator (transform.py
// beside this file): every function has its Makefile build target; the
// revoker's queue is wired the way Lambda and SQS want, and only keyrotor's
// and the operators' roles may send to it; permissions name their source
// account; roles and the operators' policy grant secret actions only on
// managed secrets, IAM key actions only on users bound to a secret and KMS
// actions only through Secrets Manager, and grant every call the code makes
// (the functions' event publisher's on the configured event bus too);
// every condition of DESIGN §6 and issue 10 has an alarm that notifies
// someone and a place on the dashboard; the auditor's heartbeat alarms when
// it is missing, over a window that follows the auditor's schedule; and
// authentication failures alarm against a learnt baseline (issue 13).
//
// Each check is a named function over the transformed template that returns
// the problems it finds; the tests run them on the real template and on
// mutated copies, to show that each one can fail.
package templatecheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Template is a transformed (plain CloudFormation) template.
type Template struct {
	Parameters map[string]map[string]any `json:"Parameters"`
	Conditions map[string]any            `json:"Conditions"`
	Resources  map[string]Resource       `json:"Resources"`
	Outputs    map[string]map[string]any `json:"Outputs"`
}

// Resource is one CloudFormation resource.
type Resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	Metadata   map[string]any `json:"Metadata"`
}

// Inputs are what the checks compare the template with.
type Inputs struct {
	// MakeTargets are the Makefile's build-<LogicalId> targets, by logical id.
	MakeTargets map[string]bool
	// EmittedMetrics are the metric names keyrotor's code publishes in the
	// metrics namespace.
	EmittedMetrics map[string]bool
	// RotationSecretActions are the IAM actions of the Secrets Manager calls
	// the rotation engine makes ("secretsmanager:DescribeSecret", ...).
	RotationSecretActions []string
	// OperatorSecretActions are those of the operator CLI's calls.
	OperatorSecretActions []string
	// ScheduleInterval returns the longest time between two firings of an
	// EventBridge schedule expression (audit.ScheduleInterval).
	ScheduleInterval func(expr string) (time.Duration, error)
	// EventActions are the IAM actions of the EventBridge calls the
	// functions' event publisher makes ("events:PutEvents").
	EventActions []string
}

// Check is one rule over a transformed template.
type Check struct {
	Name string
	Run  func(Template, Inputs) []string
}

// Checks are every rule, in a fixed order.
var Checks = []Check{
	{"functions-have-make-targets", functionsHaveMakeTargets},
	{"sqs-events-report-batch-item-failures", sqsEventsReportBatchItemFailures},
	{"queue-visibility-covers-timeout", queueVisibilityCoversTimeout},
	{"queues-encrypted-dlq-outlives-queue", queuesEncryptedDLQOutlivesQueue},
	{"revocation-queue-send-restricted", revocationQueueSendRestricted},
	{"permissions-name-source", permissionsNameSource},
	{"secret-actions-only-on-managed-secrets", secretActionsOnlyOnManagedSecrets},
	{"iam-actions-only-on-bound-users", iamActionsOnlyOnBoundUsers},
	{"admin-secret-readers-read-bindings", adminSecretReadersReadBindings},
	{"kms-keys-for-secret-readers", kmsKeysForSecretReaders},
	{"rotation-roles-grant-engine-calls", rotationRolesGrantEngineCalls},
	{"functions-may-publish-events", functionsMayPublishEvents},
	{"operator-policy-grants-cli-calls", operatorPolicyGrantsCLICalls},
	{"star-resources-only-where-required", starResourcesOnlyWhereRequired},
	{"roles-without-managed-policies", rolesWithoutManagedPolicies},
	{"alarms-have-actions", alarmsHaveActions},
	{"design-conditions-alarmed", designConditionsAlarmed},
	{"alarm-metrics-are-emitted", alarmMetricsAreEmitted},
	{"rotation-events-notify", rotationEventsNotify},
	{"auditor-scheduled", auditorScheduled},
	{"auditor-heartbeat-follows-schedule", auditorHeartbeatFollowsSchedule},
	{"auth-failures-anomaly-alarmed", authFailuresAnomalyAlarmed},
	{"rotation-function-arns-output", rotationFunctionArnsOutput},
	{"dashboard-body-is-json", dashboardBodyIsJSON},
	{"alarmed-metrics-on-dashboard", alarmedMetricsOnDashboard},
}

// Run runs every check and returns the problems by check name (checks
// without problems are absent).
func Run(t Template, in Inputs) map[string][]string {
	out := map[string][]string{}
	for _, c := range Checks {
		if p := c.Run(t, in); len(p) > 0 {
			out[c.Name] = p
		}
	}
	return out
}

// Transform runs transform.py (at script) with python3 over the template
// paths, in one process, and returns the transformed templates in order.
func Transform(script string, paths ...string) ([]Template, error) {
	raw, err := TransformJSON(script, paths...)
	if err != nil {
		return nil, err
	}
	out := make([]Template, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, fmt.Errorf("transform %s: read the output: %w", paths[i], err)
		}
	}
	return out, nil
}

// TransformJSON is Transform, but returns each transformed template whole,
// as the JSON CloudFormation takes (Conditions, DependsOn and Outputs
// included), for deploying it (infra/local's TemplateStack).
func TransformJSON(script string, paths ...string) ([]json.RawMessage, error) {
	cmd := exec.Command("python3", append([]string{script}, paths...)...)
	cmd.Env = append(os.Environ(), "AWS_DEFAULT_REGION=us-east-1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("transform %v with aws-sam-translator: %w: %s", paths, err, stderr.String())
	}
	var out []json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("transform %v: read the output: %w", paths, err)
	}
	if len(out) != len(paths) {
		return nil, fmt.Errorf("transform %v: %d templates out", paths, len(out))
	}
	return out, nil
}

var makeTarget = regexp.MustCompile(`^build-([A-Za-z0-9]+):`)

// MakeTargets returns the build-<LogicalId> targets of a Makefile.
func MakeTargets(makefile string) (map[string]bool, error) {
	f, err := os.Open(makefile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := makeTarget.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]] = true
		}
	}
	return out, sc.Err()
}

// ---------------------------------------------------------------- helpers

func (t Template) ofType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// refTo returns the logical id v refers to with Ref or Fn::GetAtt, or "".
func refTo(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if r, ok := m["Ref"].(string); ok {
		return r
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) > 0 {
		s, _ := ga[0].(string)
		return s
	}
	if ga, ok := m["Fn::GetAtt"].(string); ok {
		return strings.SplitN(ga, ".", 2)[0]
	}
	return ""
}

func num(v any, def float64) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		var f float64
		if _, err := fmt.Sscan(x, &f); err == nil {
			return f
		}
	}
	return def
}

func list(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	}
	return []any{v}
}

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// text renders a value (a string or an intrinsic such as Fn::Sub) as text
// for pattern checks.
func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprint(v)
	}
	if s, ok := m["Fn::Sub"].(string); ok {
		return s
	}
	if l, ok := m["Fn::Sub"].([]any); ok && len(l) > 0 {
		return text(l[0])
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// ---------------------------------------------------------------- checks

func functionsHaveMakeTargets(t Template, in Inputs) []string {
	var p []string
	fns := t.ofType("AWS::Lambda::Function")
	for _, id := range fns {
		r := t.Resources[id]
		if r.Metadata["BuildMethod"] != "makefile" {
			p = append(p, fmt.Sprintf("%s: Metadata.BuildMethod is %v, want makefile", id, r.Metadata["BuildMethod"]))
		}
		if !in.MakeTargets[id] {
			p = append(p, fmt.Sprintf("%s: the Makefile has no build-%s target", id, id))
		}
		if r.Properties["Runtime"] != "provided.al2023" || !slices.Equal(strs(r.Properties["Architectures"]), []string{"arm64"}) {
			p = append(p, fmt.Sprintf("%s: runtime %v on %v, want provided.al2023 on [arm64]", id, r.Properties["Runtime"], r.Properties["Architectures"]))
		}
	}
	for target := range in.MakeTargets {
		if !slices.Contains(fns, target) {
			p = append(p, fmt.Sprintf("the Makefile builds %s, which is not a function of the template", target))
		}
	}
	sort.Strings(p)
	return p
}

// sqsMappings returns the event source mappings whose source is a queue of
// the template.
func (t Template) sqsMappings() []string {
	var out []string
	for _, id := range t.ofType("AWS::Lambda::EventSourceMapping") {
		q := refTo(t.Resources[id].Properties["EventSourceArn"])
		if t.Resources[q].Type == "AWS::SQS::Queue" {
			out = append(out, id)
		}
	}
	return out
}

func sqsEventsReportBatchItemFailures(t Template, _ Inputs) []string {
	var p []string
	for _, id := range t.sqsMappings() {
		if !slices.Contains(strs(t.Resources[id].Properties["FunctionResponseTypes"]), "ReportBatchItemFailures") {
			p = append(p, id+": an SQS event source without FunctionResponseTypes [ReportBatchItemFailures]")
		}
	}
	return p
}

func queueVisibilityCoversTimeout(t Template, _ Inputs) []string {
	var p []string
	for _, id := range t.sqsMappings() {
		props := t.Resources[id].Properties
		q, fn := refTo(props["EventSourceArn"]), refTo(props["FunctionName"])
		vis := num(t.Resources[q].Properties["VisibilityTimeout"], 30)
		timeout := num(t.Resources[fn].Properties["Timeout"], 3)
		if vis < 6*timeout {
			p = append(p, fmt.Sprintf("%s: visibility timeout %gs is below 6 x %s's timeout %gs", q, vis, fn, timeout))
		}
	}
	return p
}

func queuesEncryptedDLQOutlivesQueue(t Template, _ Inputs) []string {
	var p []string
	for _, id := range t.ofType("AWS::SQS::Queue") {
		props := t.Resources[id].Properties
		if props["SqsManagedSseEnabled"] != true && props["KmsMasterKeyId"] == nil {
			p = append(p, id+": not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)")
		}
		rp, ok := props["RedrivePolicy"].(map[string]any)
		if !ok {
			continue
		}
		dlq := refTo(rp["deadLetterTargetArn"])
		if dlq == "" {
			p = append(p, id+": the dead-letter queue is not a queue of the template")
			continue
		}
		own := num(props["MessageRetentionPeriod"], 345600)
		theirs := num(t.Resources[dlq].Properties["MessageRetentionPeriod"], 345600)
		if theirs <= own {
			p = append(p, fmt.Sprintf("%s keeps messages %gs, not longer than %s's %gs", dlq, theirs, id, own))
		}
	}
	return p
}

// operatorRolesParameter names the operators' roles that may send to the
// revocation queue besides keyrotor's own.
const operatorRolesParameter = "OperatorRoleArns"

// refsIn returns every logical id or parameter that v refers to with Ref or
// Fn::GetAtt, at any depth (inside Fn::Join, Fn::Split, Fn::If...).
func refsIn(v any) map[string]bool {
	out := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r := refTo(x); r != "" {
				out[r] = true
				return
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(v)
	return out
}

// revocationQueueSendRestricted: a queue the revoker consumes has a policy
// that denies sqs:SendMessage (and nothing else, so the account can still
// manage the queue) to every principal but the roles of the template that
// send to it and the operators' roles of OperatorRoleArns. Without it, any
// principal of the account allowed sqs:SendMessage by its own policies
// could queue the revocation of any key.
func revocationQueueSendRestricted(t Template, _ Inputs) []string {
	var p []string
	if par := t.Parameters[operatorRolesParameter]; par == nil || par["Type"] != "CommaDelimitedList" || par["Default"] != "" {
		p = append(p, fmt.Sprintf("no parameter %s of type CommaDelimitedList with an empty default", operatorRolesParameter))
	}
	for _, mapping := range t.sqsMappings() {
		q := refTo(t.Resources[mapping].Properties["EventSourceArn"])
		senders := map[string]bool{}
		for _, s := range t.statements() {
			// A managed policy's senders are the operators' roles it is attached to.
			if t.Resources[s.role].Type == "AWS::IAM::Role" && slices.Contains(s.actions(), "sqs:SendMessage") && slices.ContainsFunc(list(s.m["Resource"]), func(r any) bool { return refTo(r) == q }) {
				senders[s.role] = true
			}
		}
		var found bool
		for _, id := range t.ofType("AWS::SQS::QueuePolicy") {
			props := t.Resources[id].Properties
			if !slices.ContainsFunc(list(props["Queues"]), func(r any) bool { return refTo(r) == q }) {
				continue
			}
			doc, _ := props["PolicyDocument"].(map[string]any)
			for _, st := range list(doc["Statement"]) {
				m, _ := st.(map[string]any)
				if m["Effect"] != "Deny" || !slices.Contains(strs(m["Action"]), "sqs:SendMessage") {
					continue
				}
				found = true
				name := fmt.Sprintf("%s/%v", id, m["Sid"])
				if acts := strs(m["Action"]); len(acts) != 1 {
					p = append(p, fmt.Sprintf("%s denies %v, not only sqs:SendMessage: the account could no longer manage %s", name, acts, q))
				}
				if pr, _ := m["Principal"].(map[string]any); m["Principal"] != "*" && !(len(pr) == 1 && pr["AWS"] == "*") {
					p = append(p, fmt.Sprintf("%s denies %v only, not every principal", name, m["Principal"]))
				}
				cond, _ := m["Condition"].(map[string]any)
				var allowed any
				for op, v := range cond {
					kv, _ := v.(map[string]any)
					if (op != "ArnNotEquals" && op != "StringNotEquals") || len(kv) != 1 || kv["aws:PrincipalArn"] == nil {
						p = append(p, fmt.Sprintf("%s: condition %s %v, want only ArnNotEquals or StringNotEquals on aws:PrincipalArn", name, op, v))
						continue
					}
					allowed = kv["aws:PrincipalArn"]
				}
				if len(cond) != 1 || allowed == nil {
					p = append(p, fmt.Sprintf("%s: no single exception by aws:PrincipalArn", name))
					continue
				}
				refs := refsIn(allowed)
				if !refs[operatorRolesParameter] {
					p = append(p, fmt.Sprintf("%s: the operators' roles (%s) may not send to %s", name, operatorRolesParameter, q))
				}
				for r := range refs {
					if r != operatorRolesParameter && !senders[r] {
						p = append(p, fmt.Sprintf("%s: %s may send to %s, though no keyrotor statement sends", name, r, q))
					}
				}
				for r := range senders {
					if !refs[r] {
						p = append(p, fmt.Sprintf("%s: %s sends to %s but is denied", name, r, q))
					}
				}
			}
		}
		if !found {
			p = append(p, fmt.Sprintf("%s: no queue policy denies sqs:SendMessage to principals other than keyrotor's and the operators'", q))
		}
	}
	sort.Strings(p)
	return p
}

func permissionsNameSource(t Template, _ Inputs) []string {
	var p []string
	for _, id := range t.ofType("AWS::Lambda::Permission") {
		props := t.Resources[id].Properties
		switch {
		case props["Principal"] == "secretsmanager.amazonaws.com" && props["SourceAccount"] == nil:
			p = append(p, id+": a permission for Secrets Manager without SourceAccount (confused deputy)")
		case props["SourceAccount"] == nil && props["SourceArn"] == nil:
			p = append(p, id+": a permission with neither SourceAccount nor SourceArn")
		}
	}
	return p
}

// statement is one Allow statement of a role's inline policy or of a
// managed policy of the template.
type statement struct {
	role string // the logical id of the role or of the managed policy
	m    map[string]any
	// when is the template condition a statement inside Fn::If depends on
	// ("!" before it for the false branch), or "".
	when string
}

// statements returns the Allow statements of every role and managed policy.
// A statement inside Fn::If counts with its condition (both branches).
func (t Template) statements() []statement {
	var out []statement
	add := func(id string, doc any) {
		d, _ := doc.(map[string]any)
		for _, st := range list(d["Statement"]) {
			for _, b := range branches(st) {
				if b.m["Effect"] == "Allow" {
					out = append(out, statement{id, b.m, b.when})
				}
			}
		}
	}
	for _, id := range t.ofType("AWS::IAM::Role") {
		for _, pol := range list(t.Resources[id].Properties["Policies"]) {
			p, _ := pol.(map[string]any)
			add(id, p["PolicyDocument"])
		}
	}
	for _, id := range t.ofType("AWS::IAM::ManagedPolicy") {
		add(id, t.Resources[id].Properties["PolicyDocument"])
	}
	return out
}

type branch struct {
	m    map[string]any
	when string
}

// branches returns the objects v may be: v itself, or the branches of an
// Fn::If with their conditions (AWS::NoValue is no branch).
func branches(v any) []branch {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	args, ok := m["Fn::If"].([]any)
	if !ok {
		return []branch{{m, ""}}
	}
	if len(args) != 3 {
		return nil
	}
	cond, _ := args[0].(string)
	var out []branch
	for i, w := range []string{cond, "!" + cond} {
		if refTo(args[i+1]) == "AWS::NoValue" {
			continue
		}
		for _, b := range branches(args[i+1]) {
			if b.when == "" {
				b.when = w
			}
			out = append(out, b)
		}
	}
	return out
}

func (s statement) actions() []string { return strs(s.m["Action"]) }

func (s statement) name() string {
	if sid, ok := s.m["Sid"].(string); ok {
		return s.role + "/" + sid
	}
	return fmt.Sprintf("%s/%v", s.role, s.actions())
}

// managedCondition reports whether a statement is limited to secrets tagged
// keyrotor:managed=true.
func (s statement) managedCondition() bool {
	cond, _ := s.m["Condition"].(map[string]any)
	eq, _ := cond["StringEquals"].(map[string]any)
	for k, v := range eq {
		if (k == "aws:ResourceTag/keyrotor:managed" || k == "secretsmanager:ResourceTag/keyrotor:managed") && v == "true" {
			return true
		}
	}
	return false
}

// rotationRolesGrantEngineCalls: the role of every rotation function
// (logical id ending in RotationFunction) allows each Secrets Manager call
// of the rotation engine on managed secrets; a call the code makes and the
// role lacks fails on AWS only.
func rotationRolesGrantEngineCalls(t Template, in Inputs) []string {
	granted := map[string]map[string]bool{}
	for _, st := range t.statements() {
		if !st.managedCondition() {
			continue
		}
		if granted[st.role] == nil {
			granted[st.role] = map[string]bool{}
		}
		for _, a := range st.actions() {
			granted[st.role][a] = true
		}
	}
	var p []string
	for _, id := range t.ofType("AWS::Lambda::Function") {
		if !strings.HasSuffix(id, "RotationFunction") {
			continue
		}
		role := refTo(t.Resources[id].Properties["Role"])
		for _, a := range in.RotationSecretActions {
			if !granted[role][a] {
				p = append(p, fmt.Sprintf("%s: its role %s does not allow %s on managed secrets, which the rotation engine calls", id, role, a))
			}
		}
	}
	sort.Strings(p)
	return p
}

// eventBus is the resource the functions' roles may publish events to: the
// bus the EventBusName parameter names, in this account and region.
const eventBus = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"

// functionsMayPublishEvents: every rotation function and the revoker are
// told the bus (EVENT_BUS_NAME from the EventBusName parameter) and their
// roles allow, unconditionally, every EventBridge call the publisher makes on
// that bus alone; a denied PutEvents would lose every event silently (it is
// only counted, never fails a step).
func functionsMayPublishEvents(t Template, in Inputs) []string {
	granted := map[string]map[string]bool{}
	for _, st := range t.statements() {
		if st.when != "" || st.m["Condition"] != nil {
			continue
		}
		res := list(st.m["Resource"])
		if len(res) != 1 || text(res[0]) != eventBus {
			continue
		}
		if granted[st.role] == nil {
			granted[st.role] = map[string]bool{}
		}
		for _, a := range st.actions() {
			granted[st.role][a] = true
		}
	}
	var p []string
	if len(in.EventActions) == 0 {
		p = append(p, "no EventBridge action to check: the inputs name none")
	}
	for _, id := range t.ofType("AWS::Lambda::Function") {
		if !strings.HasSuffix(id, "RotationFunction") && id != "RevokerFunction" {
			continue
		}
		props := t.Resources[id].Properties
		env, _ := props["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		if refTo(vars["EVENT_BUS_NAME"]) != "EventBusName" {
			p = append(p, id+": EVENT_BUS_NAME is not the EventBusName parameter")
		}
		role := refTo(props["Role"])
		for _, a := range in.EventActions {
			if !granted[role][a] {
				p = append(p, fmt.Sprintf("%s: its role %s does not allow %s on %s, which its event publisher calls", id, role, a, eventBus))
			}
		}
	}
	sort.Strings(p)
	return p
}

// boundUserTag is the IAM tag that binds a user to the one secret whose ARN
// it holds; thisRegionSecrets is the pattern of its value a policy allows.
const (
	boundUserTag      = "iam:ResourceTag/keyrotor:secret"
	thisRegionSecrets = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"
)

// iamReadTags is the one IAM action on users that needs no binding: the code
// reads the tag to refuse an unbound user with a clear error.
const iamReadTags = "iam:ListUserTags"

// iamActionsOnlyOnBoundUsers: every IAM action (but reading the users' tags)
// is allowed only on users whose keyrotor:secret tag names a secret of this
// account and region, so that a secret's value naming any other user (an
// administrator) mints or revokes nothing even if the code's own check were
// skipped; and whoever acts on keys may read the tag that the code checks.
func iamActionsOnlyOnBoundUsers(t Template, _ Inputs) []string {
	var p []string
	actsOnKeys, readsTags := map[string]bool{}, map[string]bool{}
	for _, s := range t.statements() {
		var acts []string
		for _, a := range s.actions() {
			switch {
			case a == iamReadTags:
				readsTags[s.role] = true
			case strings.HasPrefix(a, "iam:") || a == "*":
				acts = append(acts, a)
			}
		}
		if len(acts) == 0 {
			continue
		}
		actsOnKeys[s.role] = true
		cond, _ := s.m["Condition"].(map[string]any)
		like, _ := cond["StringLike"].(map[string]any)
		if v, ok := like[boundUserTag]; !ok || text(v) != thisRegionSecrets {
			p = append(p, fmt.Sprintf("%s: %v without the condition StringLike %s = %s", s.name(), acts, boundUserTag, thisRegionSecrets))
		}
	}
	for role := range actsOnKeys {
		if !readsTags[role] {
			p = append(p, fmt.Sprintf("%s acts on IAM users' keys but may not read their tags (%s), which the code checks first", role, iamReadTags))
		}
	}
	sort.Strings(p)
	return p
}

// adminSecrets is how a resource names the vendors' admin secrets.
const adminSecrets = "${AdminSecretPrefix}"

// adminSecretReadersReadBindings: whoever reads an admin secret's value may
// describe it too, since its tag keyrotor:admin-for says which managed
// secrets may use it; without DescribeSecret every use would be refused.
func adminSecretReadersReadBindings(t Template, _ Inputs) []string {
	type grant struct{ role, res string }
	actions := map[grant]map[string]bool{}
	for _, s := range t.statements() {
		for _, r := range list(s.m["Resource"]) {
			g := grant{s.role, text(r)}
			if !strings.Contains(g.res, adminSecrets) {
				continue
			}
			if actions[g] == nil {
				actions[g] = map[string]bool{}
			}
			for _, a := range s.actions() {
				actions[g][a] = true
			}
		}
	}
	var p []string
	for g, acts := range actions {
		if acts["secretsmanager:GetSecretValue"] && !acts["secretsmanager:DescribeSecret"] {
			p = append(p, fmt.Sprintf("%s reads the admin secrets %s but may not describe them (their keyrotor:admin-for tag)", g.role, g.res))
		}
	}
	sort.Strings(p)
	return p
}

// KMS: the parameter naming the customer-managed keys, and the one way
// keyrotor's roles may use them.
const (
	kmsKeysParameter = "KmsKeyArns"
	kmsViaService    = "secretsmanager.${AWS::Region}.amazonaws.com"
)

// kmsWriteActions are what writing a secret encrypted with a customer-managed
// key needs beyond kms:Decrypt.
var kmsWriteActions = []string{"kms:GenerateDataKey", "kms:Encrypt"}

// kmsGrant reports whether s is a well-formed KMS statement: only on the
// KmsKeyArns keys, only through Secrets Manager, only when keys are given.
func (t Template) kmsGrant(s statement) string {
	cond, _ := s.m["Condition"].(map[string]any)
	eq, _ := cond["StringEquals"].(map[string]any)
	res := list(s.m["Resource"])
	switch {
	case len(res) != 1 || refTo(res[0]) != kmsKeysParameter:
		return fmt.Sprintf("on %v, not on the keys of %s", s.m["Resource"], kmsKeysParameter)
	case len(cond) != 1 || len(eq) != 1 || text(eq["kms:ViaService"]) != kmsViaService:
		return fmt.Sprintf("with condition %v, not only StringEquals kms:ViaService = %s", text(s.m["Condition"]), kmsViaService)
	case s.when == "" || strings.HasPrefix(s.when, "!"):
		return "not inside Fn::If on a condition that KmsKeyArns is not empty"
	}
	b, _ := json.Marshal(t.Conditions[s.when])
	if !strings.Contains(string(b), `"Ref":"`+kmsKeysParameter+`"`) {
		return fmt.Sprintf("under condition %s, which does not test %s", s.when, kmsKeysParameter)
	}
	return ""
}

// kmsKeysForSecretReaders: secrets may be encrypted with customer-managed
// keys (parameter KmsKeyArns); every role or policy that reads secret values
// may then decrypt with those keys, and those that write secret values may
// generate data keys, each only through Secrets Manager in this region. No
// one else gets a KMS action, and no one gets one on other keys.
func kmsKeysForSecretReaders(t Template, _ Inputs) []string {
	var p []string
	if par := t.Parameters[kmsKeysParameter]; par == nil || par["Type"] != "CommaDelimitedList" || par["Default"] != "" {
		p = append(p, fmt.Sprintf("no parameter %s of type CommaDelimitedList with an empty default", kmsKeysParameter))
	}
	reads, writes, kms := map[string]bool{}, map[string]bool{}, map[string]map[string]bool{}
	for _, s := range t.statements() {
		var kmsActs []string
		for _, a := range s.actions() {
			switch {
			case a == "secretsmanager:GetSecretValue":
				reads[s.role] = true
			case a == "secretsmanager:PutSecretValue":
				writes[s.role] = true
			case strings.HasPrefix(a, "kms:") || a == "*":
				kmsActs = append(kmsActs, a)
			}
		}
		if len(kmsActs) == 0 {
			continue
		}
		if why := t.kmsGrant(s); why != "" {
			p = append(p, fmt.Sprintf("%s: %v %s", s.name(), kmsActs, why))
			continue
		}
		if kms[s.role] == nil {
			kms[s.role] = map[string]bool{}
		}
		for _, a := range kmsActs {
			kms[s.role][a] = true
		}
	}
	for role, acts := range kms {
		for a := range acts {
			if a != "kms:Decrypt" && !(writes[role] && slices.Contains(kmsWriteActions, a)) {
				p = append(p, fmt.Sprintf("%s: %s, though it writes no secret value", role, a))
			}
		}
	}
	for role := range reads {
		if !kms[role]["kms:Decrypt"] {
			p = append(p, fmt.Sprintf("%s reads secret values but may not decrypt with the keys of %s", role, kmsKeysParameter))
		}
		if writes[role] && !kms[role]["kms:GenerateDataKey"] {
			p = append(p, fmt.Sprintf("%s writes secret values but may not generate data keys with the keys of %s", role, kmsKeysParameter))
		}
	}
	sort.Strings(p)
	return p
}

// operatorPolicy is the logical id of the managed policy for the operators'
// roles.
const operatorPolicy = "OperatorPolicy"

// operatorPolicyGrantsCLICalls: the operators' managed policy allows every
// Secrets Manager call of the operator CLI on managed secrets, reading the
// configuration of every rotation function (status reads GRACE_PERIOD and
// the timeout that unstick waits out) and sending to the revocation queue
// (unstick queues the abandoned key's revocation).
func operatorPolicyGrantsCLICalls(t Template, in Inputs) []string {
	if t.Resources[operatorPolicy].Type != "AWS::IAM::ManagedPolicy" {
		return []string{"no managed policy " + operatorPolicy + " for the operators' roles"}
	}
	secrets, onStar := map[string]bool{}, map[string]bool{}
	on := map[string]map[string]bool{} // action -> logical ids of its resources
	for _, s := range t.statements() {
		if s.role != operatorPolicy {
			continue
		}
		for _, a := range s.actions() {
			if s.managedCondition() {
				secrets[a] = true
			}
			if slices.ContainsFunc(list(s.m["Resource"]), func(r any) bool { return text(r) == "*" }) {
				onStar[a] = true
			}
			if on[a] == nil {
				on[a] = map[string]bool{}
			}
			for _, r := range list(s.m["Resource"]) {
				on[a][refTo(r)] = true
			}
		}
	}
	var p []string
	for _, a := range in.OperatorSecretActions {
		if slices.Contains(secretActionsOnStar, a) {
			if !onStar[a] {
				p = append(p, fmt.Sprintf("%s does not allow %s, which the operator CLI calls", operatorPolicy, a))
			}
		} else if !secrets[a] {
			p = append(p, fmt.Sprintf("%s does not allow %s on managed secrets, which the operator CLI calls", operatorPolicy, a))
		}
	}
	for _, fn := range t.rotationFunctions() {
		if !on["lambda:GetFunctionConfiguration"][fn] {
			p = append(p, fmt.Sprintf("%s does not allow lambda:GetFunctionConfiguration on %s (status reads its GRACE_PERIOD and timeout)", operatorPolicy, fn))
		}
	}
	for _, mapping := range t.sqsMappings() {
		q := refTo(t.Resources[mapping].Properties["EventSourceArn"])
		if !on["sqs:SendMessage"][q] {
			p = append(p, fmt.Sprintf("%s does not allow sqs:SendMessage on %s (unstick queues the abandoned key's revocation)", operatorPolicy, q))
		}
	}
	sort.Strings(p)
	return p
}

// secretActionsOnStar are the Secrets Manager actions that have no resource
// (AWS requires "*").
var secretActionsOnStar = []string{"secretsmanager:ListSecrets", "secretsmanager:GetRandomPassword", "secretsmanager:BatchGetSecretValue"}

func secretActionsOnlyOnManagedSecrets(t Template, _ Inputs) []string {
	var p []string
	for _, s := range t.statements() {
		var secretActions []string
		for _, a := range s.actions() {
			if strings.HasPrefix(a, "secretsmanager:") && !slices.Contains(secretActionsOnStar, a) {
				secretActions = append(secretActions, a)
			}
			if a == "*" || a == "secretsmanager:*" {
				p = append(p, s.name()+": grants "+a)
			}
		}
		if s.m["NotAction"] != nil || s.m["NotResource"] != nil {
			p = append(p, s.name()+": NotAction or NotResource")
		}
		if len(secretActions) == 0 {
			continue
		}
		for _, r := range list(s.m["Resource"]) {
			res := text(r)
			switch {
			case res == "*":
				p = append(p, fmt.Sprintf("%s: %v on *", s.name(), secretActions))
			case strings.HasSuffix(res, ":secret:*") && !s.managedCondition():
				p = append(p, fmt.Sprintf("%s: %v on every secret without the keyrotor:managed=true condition", s.name(), secretActions))
			}
		}
	}
	return p
}

// starActions are the actions allowed on "*": AWS offers no resource for them.
var starActions = append([]string{"cloudwatch:PutMetricData", "sts:GetCallerIdentity"}, secretActionsOnStar...)

func starResourcesOnlyWhereRequired(t Template, _ Inputs) []string {
	var p []string
	for _, s := range t.statements() {
		if !slices.ContainsFunc(list(s.m["Resource"]), func(r any) bool { return text(r) == "*" }) {
			continue
		}
		for _, a := range s.actions() {
			if !slices.Contains(starActions, a) {
				p = append(p, fmt.Sprintf("%s: %s on *", s.name(), a))
			}
			if a == "cloudwatch:PutMetricData" {
				cond, _ := s.m["Condition"].(map[string]any)
				eq, _ := cond["StringEquals"].(map[string]any)
				if eq["cloudwatch:namespace"] == nil {
					p = append(p, s.name()+": cloudwatch:PutMetricData on * without a cloudwatch:namespace condition")
				}
			}
		}
	}
	return p
}

// rolesWithoutManagedPolicies keeps every permission inline, where the
// checks above see it: AWS's managed Lambda policies grant logs and SQS
// actions on "*".
func rolesWithoutManagedPolicies(t Template, _ Inputs) []string {
	var p []string
	for _, id := range t.ofType("AWS::IAM::Role") {
		if arns := list(t.Resources[id].Properties["ManagedPolicyArns"]); len(arns) > 0 {
			p = append(p, fmt.Sprintf("%s: managed policies %v", id, arns))
		}
	}
	return p
}

func alarmsHaveActions(t Template, _ Inputs) []string {
	var p []string
	for _, id := range t.ofType("AWS::CloudWatch::Alarm") {
		acts := list(t.Resources[id].Properties["AlarmActions"])
		if len(acts) == 0 {
			p = append(p, id+": no AlarmActions")
			continue
		}
		for _, a := range acts {
			if t.Resources[refTo(a)].Type != "AWS::SNS::Topic" {
				p = append(p, fmt.Sprintf("%s: action %v is not a topic of the template", id, a))
			}
		}
	}
	return p
}

// alarmMetric is one metric an alarm watches.
type alarmMetric struct {
	alarm, namespace, name string
	dims                   map[string]string // dimension name -> logical id or value
	threshold              float64
	op                     string
}

func (t Template) alarmMetrics() []alarmMetric {
	var out []alarmMetric
	for _, id := range t.ofType("AWS::CloudWatch::Alarm") {
		props := t.Resources[id].Properties
		th, op := num(props["Threshold"], -1), fmt.Sprint(props["ComparisonOperator"])
		add := func(m map[string]any) {
			am := alarmMetric{alarm: id, name: fmt.Sprint(m["MetricName"]), threshold: th, op: op, dims: map[string]string{}}
			if ns, ok := m["Namespace"].(string); ok {
				am.namespace = ns
			} else {
				am.namespace = "${" + refTo(m["Namespace"]) + "}"
			}
			for _, d := range list(m["Dimensions"]) {
				dm, _ := d.(map[string]any)
				v := refTo(dm["Value"])
				if v == "" {
					v = fmt.Sprint(dm["Value"])
				}
				am.dims[fmt.Sprint(dm["Name"])] = v
			}
			out = append(out, am)
		}
		if props["MetricName"] != nil {
			add(props)
		}
		for _, q := range list(props["Metrics"]) {
			qm, _ := q.(map[string]any)
			ms, _ := qm["MetricStat"].(map[string]any)
			if m, ok := ms["Metric"].(map[string]any); ok {
				add(m)
			}
		}
	}
	return out
}

// ownNamespace is how alarms name keyrotor's namespace: the parameter.
const ownNamespace = "${MetricsNamespace}"

// Condition is one condition of DESIGN §6 and how to recognise its alarm.
type Condition struct {
	Name    string
	Alarmed func(Template, []alarmMetric) bool
}

func ownMetric(name string, ok func(alarmMetric) bool) func(Template, []alarmMetric) bool {
	return func(_ Template, ms []alarmMetric) bool {
		return slices.ContainsFunc(ms, func(m alarmMetric) bool {
			return m.namespace == ownNamespace && m.name == name && len(m.dims) == 0 && (ok == nil || ok(m))
		})
	}
}

func atLeastOne(m alarmMetric) bool {
	return (m.op == "GreaterThanOrEqualToThreshold" && m.threshold <= 1) || (m.op == "GreaterThanThreshold" && m.threshold < 1)
}

// Conditions are the conditions of DESIGN §6 and issue 10.
var Conditions = []Condition{
	{"key age above 1.5 x the rotation interval", ownMetric("MaxKeyAgeRatio", func(m alarmMetric) bool {
		return m.op == "GreaterThanThreshold" && m.threshold == 1.5
	})},
	{"rotation failure: failed steps", ownMetric("RotationFailed", atLeastOne)},
	{"rotation failure: function errors of every function", func(t Template, ms []alarmMetric) bool {
		for _, fn := range t.ofType("AWS::Lambda::Function") {
			if !slices.ContainsFunc(ms, func(m alarmMetric) bool {
				return m.namespace == "AWS/Lambda" && m.name == "Errors" && m.dims["FunctionName"] == fn
			}) {
				return false
			}
		}
		return true
	}},
	{"old key still in use after the grace period", ownMetric("OldKeyInUse", atLeastOne)},
	{"revocation failures", ownMetric("RevocationsFailed", atLeastOne)},
	{"a non-empty dead-letter queue", func(t Template, ms []alarmMetric) bool {
		for _, q := range t.ofType("AWS::SQS::Queue") {
			rp, _ := t.Resources[q].Properties["RedrivePolicy"].(map[string]any)
			dlq := refTo(rp["deadLetterTargetArn"])
			if dlq == "" {
				continue
			}
			if !slices.ContainsFunc(ms, func(m alarmMetric) bool {
				return m.namespace == "AWS/SQS" && m.name == "ApproximateNumberOfMessagesVisible" && m.dims["QueueName"] == dlq && m.op == "GreaterThanThreshold" && m.threshold == 0
			}) {
				return false
			}
		}
		return true
	}},
	{"stuck rotations", ownMetric("StuckRotations", atLeastOne)},
	// The fixed floor, beside the anomaly-detection alarm (authFailuresAnomalyAlarmed).
	{"a spike of vendor authentication failures", ownMetric("VendorAuthFailures", func(m alarmMetric) bool {
		return m.op == "GreaterThanOrEqualToThreshold" || m.op == "GreaterThanThreshold"
	})},
	// Issue 10, "silence is a defect": every refusal to revoke and every key
	// not provably ours alarms, not a log line alone.
	{"a revocation refused as unproven", ownMetric("RevocationsRefused", atLeastOne)},
	{"keys not provably the secret's", ownMetric("UnownedKeys", atLeastOne)},
	{"a revocation of an abandoned rotation (the key is live)", ownMetric("RevocationsAbandoned", atLeastOne)},
	{"keys minted by abandoned rotations", ownMetric("AbandonedKeys", atLeastOne)},
}

func designConditionsAlarmed(t Template, _ Inputs) []string {
	ms := t.alarmMetrics()
	var p []string
	for _, c := range Conditions {
		if !c.Alarmed(t, ms) {
			p = append(p, "no alarm for: "+c.Name)
		}
	}
	return p
}

func alarmMetricsAreEmitted(t Template, in Inputs) []string {
	var p []string
	for _, m := range t.alarmMetrics() {
		if m.namespace == ownNamespace && !in.EmittedMetrics[m.name] {
			p = append(p, fmt.Sprintf("%s watches %s, which keyrotor never publishes", m.alarm, m.name))
		}
	}
	return p
}

func rotationEventsNotify(t Template, _ Inputs) []string {
	for _, id := range t.ofType("AWS::Events::Rule") {
		props := t.Resources[id].Properties
		pat, _ := props["EventPattern"].(map[string]any)
		detail, _ := pat["detail"].(map[string]any)
		names := strs(detail["eventName"])
		if !slices.Contains(strs(pat["source"]), "aws.secretsmanager") || !slices.Contains(names, "RotationFailed") || !slices.Contains(names, "RotationAbandoned") {
			continue
		}
		for _, tg := range list(props["Targets"]) {
			tm, _ := tg.(map[string]any)
			if t.Resources[refTo(tm["Arn"])].Type == "AWS::SNS::Topic" {
				return nil
			}
		}
	}
	return []string{"no EventBridge rule sends Secrets Manager's RotationFailed and RotationAbandoned events to a topic"}
}

func auditorScheduled(t Template, _ Inputs) []string {
	for _, id := range t.ofType("AWS::Events::Rule") {
		props := t.Resources[id].Properties
		if props["ScheduleExpression"] == nil {
			continue
		}
		for _, tg := range list(props["Targets"]) {
			tm, _ := tg.(map[string]any)
			if refTo(tm["Arn"]) == "AuditorFunction" {
				return nil
			}
		}
	}
	return []string{"AuditorFunction has no schedule"}
}

// rotationFunctions are the functions Secrets Manager may invoke.
func (t Template) rotationFunctions() []string {
	var out []string
	for _, id := range t.ofType("AWS::Lambda::Permission") {
		props := t.Resources[id].Properties
		if props["Principal"] == "secretsmanager.amazonaws.com" {
			out = append(out, refTo(props["FunctionName"]))
		}
	}
	sort.Strings(out)
	return out
}

func rotationFunctionArnsOutput(t Template, _ Inputs) []string {
	var p []string
	fns := t.rotationFunctions()
	if len(fns) == 0 {
		return []string{"no function may be invoked by Secrets Manager"}
	}
	for _, fn := range fns {
		found := false
		for _, o := range t.Outputs {
			v, _ := o["Value"].(map[string]any)
			if ga, ok := v["Fn::GetAtt"].([]any); ok && len(ga) == 2 && ga[0] == fn && ga[1] == "Arn" {
				found = true
			}
		}
		if !found {
			p = append(p, fn+": no output with its ARN")
		}
	}
	return p
}

// alarmedMetricsOnDashboard: every metric of keyrotor's namespace that an
// alarm watches is on the dashboard, where the on-call engineer looks first.
func alarmedMetricsOnDashboard(t Template, _ Inputs) []string {
	var bodies string
	for _, id := range t.ofType("AWS::CloudWatch::Dashboard") {
		bodies += text(t.Resources[id].Properties["DashboardBody"])
	}
	var p []string
	for _, m := range t.alarmMetrics() {
		// A metric row names it as "Name"; a SEARCH expression as \"Name\".
		if m.namespace == ownNamespace && !strings.Contains(bodies, `"`+m.name+`"`) && !strings.Contains(bodies, `\"`+m.name+`\"`) {
			p = append(p, fmt.Sprintf("%s watches %s, which no dashboard shows", m.alarm, m.name))
		}
	}
	sort.Strings(p)
	return p
}

var subVariable = regexp.MustCompile(`\$\{[^}]+\}`)

func dashboardBodyIsJSON(t Template, _ Inputs) []string {
	ids := t.ofType("AWS::CloudWatch::Dashboard")
	if len(ids) == 0 {
		return []string{"no dashboard"}
	}
	var p []string
	for _, id := range ids {
		body := subVariable.ReplaceAllString(text(t.Resources[id].Properties["DashboardBody"]), "x")
		var v struct {
			Widgets []map[string]any `json:"widgets"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil || len(v.Widgets) == 0 {
			p = append(p, fmt.Sprintf("%s: the body is not a dashboard's JSON (%v)", id, err))
		}
	}
	return p
}

// ---------------------------------------------------------------- issue 13: the monitoring is monitored

// eval resolves v for the parameter values params: Ref to a parameter (its
// value in params, else its Default) and Fn::If over the template's
// conditions (Fn::Equals, Fn::Or, Fn::And, Fn::Not, Condition). Anything
// else is returned as it is.
func (t Template) eval(v any, params map[string]string) any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return v
	}
	if r, ok := m["Ref"].(string); ok {
		if p, ok := params[r]; ok {
			return p
		}
		if par, ok := t.Parameters[r]; ok && par["Default"] != nil {
			return par["Default"]
		}
		return v
	}
	if args, ok := m["Fn::If"].([]any); ok && len(args) == 3 {
		name, _ := args[0].(string)
		if t.condition(map[string]any{"Condition": name}, params) {
			return t.eval(args[1], params)
		}
		return t.eval(args[2], params)
	}
	return v
}

// condition evaluates a condition expression for the parameter values.
func (t Template) condition(v any, params map[string]string) bool {
	m, _ := v.(map[string]any)
	if name, ok := m["Condition"].(string); ok {
		return t.condition(t.Conditions[name], params)
	}
	args := list(m["Fn::Equals"])
	if len(args) == 2 {
		return fmt.Sprint(t.eval(args[0], params)) == fmt.Sprint(t.eval(args[1], params))
	}
	if args, ok := m["Fn::Or"].([]any); ok {
		return slices.ContainsFunc(args, func(a any) bool { return t.condition(a, params) })
	}
	if args, ok := m["Fn::And"].([]any); ok {
		return !slices.ContainsFunc(args, func(a any) bool { return !t.condition(a, params) })
	}
	if args, ok := m["Fn::Not"].([]any); ok && len(args) == 1 {
		return !t.condition(args[0], params)
	}
	return false
}

// auditorScheduleExpression returns the ScheduleExpression of the rule
// that runs the auditor (a string or a Ref), nil when there is none.
func (t Template) auditorScheduleExpression() any {
	for _, id := range t.ofType("AWS::Events::Rule") {
		props := t.Resources[id].Properties
		for _, tg := range list(props["Targets"]) {
			tm, _ := tg.(map[string]any)
			if refTo(tm["Arn"]) == "AuditorFunction" && props["ScheduleExpression"] != nil {
				return props["ScheduleExpression"]
			}
		}
	}
	return nil
}

// longestAuditSchedule is the longest schedule the template promises the
// heartbeat alarm covers (AuditSchedule's description: at least daily).
const longestAuditSchedule = "rate(1 day)"

// auditSchedules returns the values the auditor's schedule parameter
// (named by the rule's Ref) is checked with: its default, its allowed
// values, every value the conditions compare it with (each side of each
// Fn::If the alarm may take) and longestAuditSchedule.
func (t Template) auditSchedules(param string) []string {
	out := []string{longestAuditSchedule}
	add := func(v any) {
		if s, ok := v.(string); ok && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(t.Parameters[param]["Default"])
	for _, v := range list(t.Parameters[param]["AllowedValues"]) {
		add(v)
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if args := list(x["Fn::Equals"]); len(args) == 2 {
				if refTo(args[0]) == param {
					add(args[1])
				}
				if refTo(args[1]) == param {
					add(args[0])
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	for _, c := range t.Conditions {
		walk(c)
	}
	sort.Strings(out)
	return out
}

// CloudWatch's limits on an alarm (PutMetricAlarm): a period of at most a
// day for standard-resolution metrics, a window (Period x EvaluationPeriods)
// of at most 7 days, and of at most a day when the period is under an hour.
const (
	maxAlarmPeriod      = 86400
	maxAlarmWindow      = 7 * 86400
	maxShortAlarmWindow = 86400
)

// auditorHeartbeatFollowsSchedule: an alarm watches the auditor's
// AuditorHeartbeat and treats missing data as breaching, so that an auditor
// that stopped (its schedule disabled, its permission removed, throttled)
// is an alarm and not the silence of every alarm on its figures. For every
// schedule the auditor may run on (auditSchedules), the alarm's period and
// evaluation periods, resolved for that schedule, are within CloudWatch's
// limits and its window, every period breaching, lasts at least two of the
// schedule's intervals: a late audit never alarms.
func auditorHeartbeatFollowsSchedule(t Template, in Inputs) []string {
	const metric = "AuditorHeartbeat"
	var p []string
	sched := t.auditorScheduleExpression()
	if sched == nil {
		return []string{"AuditorFunction has no schedule for the heartbeat alarm to follow"}
	}
	param := refTo(sched)
	var schedules []string
	if param != "" {
		schedules = t.auditSchedules(param)
	} else {
		schedules = []string{text(sched)}
	}
	found := false
	for _, id := range t.ofType("AWS::CloudWatch::Alarm") {
		props := t.Resources[id].Properties
		if props["MetricName"] != metric || "${"+refTo(props["Namespace"])+"}" != ownNamespace || len(list(props["Dimensions"])) > 0 {
			continue
		}
		found = true
		if props["TreatMissingData"] != "breaching" {
			p = append(p, fmt.Sprintf("%s: TreatMissingData %v: an auditor that stops running would not alarm, want breaching", id, props["TreatMissingData"]))
		}
		th, op := num(props["Threshold"], -1), props["ComparisonOperator"]
		if !(op == "LessThanThreshold" && th > 0 && th <= 1) && !(op == "LessThanOrEqualToThreshold" && th >= 0 && th < 1) {
			p = append(p, fmt.Sprintf("%s: %v %g does not alarm exactly when there is no heartbeat (1 per audit)", id, op, th))
		}
		for _, s := range schedules {
			params := map[string]string{}
			if param != "" {
				params[param] = s
			}
			interval, err := in.ScheduleInterval(s)
			if err != nil {
				p = append(p, fmt.Sprintf("%s: auditor schedule %q: %v", id, s, err))
				continue
			}
			period := num(t.eval(props["Period"], params), -1)
			evals := num(t.eval(props["EvaluationPeriods"], params), -1)
			toAlarm := num(t.eval(props["DatapointsToAlarm"], params), evals)
			window := period * evals
			name := fmt.Sprintf("%s with the auditor on %s", id, s)
			switch {
			case period <= 0 || evals <= 0:
				p = append(p, fmt.Sprintf("%s: Period %v and EvaluationPeriods %v are not numbers", name, props["Period"], props["EvaluationPeriods"]))
				continue
			case int(period)%60 != 0 || period > maxAlarmPeriod:
				p = append(p, fmt.Sprintf("%s: period %gs, want a multiple of 60 up to %ds", name, period, maxAlarmPeriod))
			case window > maxAlarmWindow || (period < 3600 && window > maxShortAlarmWindow):
				p = append(p, fmt.Sprintf("%s: %g x %gs is beyond CloudWatch's limit (7 days; 1 day for periods under an hour)", name, evals, period))
			}
			if toAlarm != evals {
				p = append(p, fmt.Sprintf("%s: %g of %g periods alarm: a healthy auditor leaves periods without a heartbeat", name, toAlarm, evals))
			}
			if window < 2*interval.Seconds() {
				p = append(p, fmt.Sprintf("%s: a window of %g x %gs is under two audit intervals (%s): a healthy auditor alarms", name, evals, period, interval))
			}
		}
	}
	if !found {
		p = append(p, fmt.Sprintf("no alarm on %s in keyrotor's namespace, without dimension: a stopped auditor silences every alarm on its figures", metric))
	}
	return p
}

// anomalyWatched are the authentication-failure metrics that alarm against
// a learnt baseline (the guide's "rate > baseline x 3"): the applications'
// AuthFailures (the Go client's EMF) and the functions' VendorAuthFailures.
var anomalyWatched = []string{"AuthFailures", "VendorAuthFailures"}

// vendorAuthThresholdParameter is the fixed floor of vendor-auth-failures;
// saved parameter overrides name it, so it stays and stays used.
const vendorAuthThresholdParameter = "VendorAuthFailureThreshold"

var anomalyBand = regexp.MustCompile(`^ANOMALY_DETECTION_BAND\(\s*([A-Za-z0-9_]+)\s*(,[^)]*)?\)$`)

// anomalyAlarmOn reports whether the alarm props alarms when metric (in
// keyrotor's namespace, without dimension) rises above an
// ANOMALY_DETECTION_BAND over it.
func anomalyAlarmOn(props map[string]any, metric string) bool {
	op := props["ComparisonOperator"]
	if op != "GreaterThanUpperThreshold" && op != "LessThanLowerOrGreaterThanUpperThreshold" {
		return false
	}
	queries := map[string]map[string]any{}
	for _, q := range list(props["Metrics"]) {
		qm, _ := q.(map[string]any)
		if id, ok := qm["Id"].(string); ok {
			queries[id] = qm
		}
	}
	band := queries[fmt.Sprint(props["ThresholdMetricId"])]
	mm := anomalyBand.FindStringSubmatch(text(band["Expression"]))
	if mm == nil || band["ReturnData"] == false {
		return false
	}
	q := queries[mm[1]]
	ms, _ := q["MetricStat"].(map[string]any)
	m, _ := ms["Metric"].(map[string]any)
	return q["ReturnData"] != false && m["MetricName"] == metric && "${"+refTo(m["Namespace"])+"}" == ownNamespace && len(list(m["Dimensions"])) == 0
}

// authFailuresAnomalyAlarmed: each of anomalyWatched has an
// anomaly-detection alarm, and VendorAuthFailureThreshold, a Number, is
// still the threshold of an alarm on VendorAuthFailures, so that stacks
// deployed with an override keep deploying and keep its meaning.
func authFailuresAnomalyAlarmed(t Template, _ Inputs) []string {
	var p []string
	for _, metric := range anomalyWatched {
		if !slices.ContainsFunc(t.ofType("AWS::CloudWatch::Alarm"), func(id string) bool { return anomalyAlarmOn(t.Resources[id].Properties, metric) }) {
			p = append(p, fmt.Sprintf("no anomaly-detection alarm (ThresholdMetricId on ANOMALY_DETECTION_BAND, above the band) on %s", metric))
		}
	}
	if par := t.Parameters[vendorAuthThresholdParameter]; par == nil || par["Type"] != "Number" {
		p = append(p, fmt.Sprintf("no Number parameter %s: saved parameter overrides would fail", vendorAuthThresholdParameter))
	}
	if !slices.ContainsFunc(t.ofType("AWS::CloudWatch::Alarm"), func(id string) bool {
		props := t.Resources[id].Properties
		return props["MetricName"] == "VendorAuthFailures" && refTo(props["Threshold"]) == vendorAuthThresholdParameter
	}) {
		p = append(p, fmt.Sprintf("no alarm on VendorAuthFailures at %s: an override would be accepted and ignored", vendorAuthThresholdParameter))
	}
	return p
}
