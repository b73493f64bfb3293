package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/internal/templatecheck"
)

//go:embed cfn_launcher.py
var cfnLauncher []byte

// TemplateOptions configure DeployTemplate.
type TemplateOptions struct {
	// RepoRoot is the keyrotor repository (default: found above the
	// working directory): its Makefile says which folder of functions/ each
	// function of the template runs (build-<LogicalId>).
	RepoRoot string
	// Template is the transformed template (plain CloudFormation JSON);
	// empty: RepoRoot's template.yaml transformed with aws-sam-translator
	// (internal/templatecheck/transform.py).
	Template []byte
	// StackName is the CloudFormation stack's name (default keyrotor).
	StackName string
	// Parameters are the stack's parameters; GatewayApiBaseUrl is the local
	// reference gateway's URL unless given.
	Parameters map[string]string
	// Run are the logical ids of the template's functions to run under the
	// emulator (default: every function of the stack). The others exist in
	// moto's Lambda but answer an invoke with Runtime.NoEmulator.
	Run []string
	// Logs receives every process's output (nil: kept in memory only).
	Logs io.Writer
}

// TemplateStack is template.yaml deployed into moto's CloudFormation
// (through cfn_launcher.py), with its functions running as the stack
// defines them: each function moto created from the template runs under its
// own emulator with the name, environment and timeout moto's Lambda holds
// for it (GetFunctionConfiguration, plus the AWS_* variables Lambda itself
// sets), and each event-source mapping of the stack is polled with its own
// queue and batch size (StartMappings). Nothing of the stack is taken from
// the local stack's own defaults (Start): only the reference gateway (the
// vendor) and moto are the same.
//
// moto's CloudFormation does not create every resource type: it skips the
// others with a warning and still reports CREATE_COMPLETE. NotCreated lists
// the template's resources it skipped; the template checks
// (internal/templatecheck) cover those instead (docs/operations.md).
type TemplateStack struct {
	// Stack holds the running processes, the gateway and moto; its
	// Functions are the running functions by folder name (gateway,
	// revoker), each with the stack's FunctionName and ARN.
	*Stack
	// StackName is the CloudFormation stack's name.
	StackName string
	// Outputs are the stack's outputs, by key.
	Outputs map[string]string
	// Resources are the stack's resources as CloudFormation lists them:
	// physical id by logical id.
	Resources map[string]string
	// FunctionConfigs are the configurations moto's Lambda holds for the
	// stack's functions, by logical id.
	FunctionConfigs map[string]*lambda.GetFunctionConfigurationOutput
	// Mappings are the stack's event-source mappings as moto's Lambda
	// holds them.
	Mappings []lambdatypes.EventSourceMappingConfiguration
	// Pollers are the mappings' pollers, in the order of Mappings, once
	// StartMappings ran.
	Pollers []*Poller
	// NotCreated are the template's resources (logical id: type) whose
	// type moto's CloudFormation does not create, sorted.
	NotCreated []string
}

// DeployTemplate starts moto (with the CloudFormation fixes of
// cfn_launcher.py) and the reference gateway, uploads a placeholder for each
// function's code to the S3 location the template names, creates the stack
// from the template, and runs the functions opts.Run names under the
// emulator as the deployed stack defines them. The event-source mappings
// are not polled until StartMappings. On error everything started is
// stopped; Stop stops the rest.
func DeployTemplate(ctx context.Context, opts TemplateOptions) (_ *TemplateStack, err error) {
	if opts.RepoRoot == "" {
		if opts.RepoRoot, err = FindRepoRoot(""); err != nil {
			return nil, err
		}
	}
	if opts.StackName == "" {
		opts.StackName = "keyrotor"
	}
	if len(opts.Template) == 0 {
		raw, err := templatecheck.TransformJSON(filepath.Join(opts.RepoRoot, "internal", "templatecheck", "transform.py"),
			filepath.Join(opts.RepoRoot, "template.yaml"))
		if err != nil {
			return nil, err
		}
		opts.Template = raw[0]
	}
	var tpl struct {
		Resources map[string]struct {
			Type       string         `json:"Type"`
			Properties map[string]any `json:"Properties"`
		} `json:"Resources"`
	}
	if err := json.Unmarshal(opts.Template, &tpl); err != nil {
		return nil, fmt.Errorf("deploy the template: it is not a CloudFormation JSON template: %w", err)
	}
	folders, err := makefileFunctionFolders(filepath.Join(opts.RepoRoot, "Makefile"))
	if err != nil {
		return nil, err
	}

	s := &Stack{opts: Options{RepoRoot: opts.RepoRoot, Logs: opts.Logs}}
	if s.WorkDir, err = os.MkdirTemp("", "keyrotor-template-"); err != nil {
		return nil, fmt.Errorf("deploy the template: %w", err)
	}
	ts := &TemplateStack{Stack: s, StackName: opts.StackName}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	if s.rie, err = FindRIE(); err != nil {
		return nil, err
	}
	front := &frontHandler{}
	frontURL, err := s.serve(front)
	if err != nil {
		return nil, err
	}
	if s.moto, s.Endpoint, err = startCFNLauncher(s.WorkDir, frontURL, opts.Logs); err != nil {
		return nil, err
	}
	r, err := newRegionStack(ctx, s, Region)
	if err != nil {
		return nil, err
	}
	s.regions = []*RegionStack{r}
	s.Functions = r.Functions
	if err := s.startGateway(); err != nil {
		return nil, err
	}

	// The code of every function: a placeholder where the template says.
	zipFile, err := placeholderZip()
	if err != nil {
		return nil, err
	}
	uploaded := map[string]bool{}
	for id, res := range tpl.Resources {
		if res.Type != "AWS::Lambda::Function" {
			continue
		}
		code, _ := res.Properties["Code"].(map[string]any)
		bucket, _ := code["S3Bucket"].(string)
		key, _ := code["S3Key"].(string)
		if bucket == "" || key == "" {
			return nil, fmt.Errorf("deploy the template: function %s has no Code.S3Bucket and S3Key", id)
		}
		if !uploaded[bucket] {
			if err := motoPut(ctx, s.Endpoint+"/"+bucket, nil); err != nil {
				return nil, fmt.Errorf("create bucket %s: %w", bucket, err)
			}
		}
		uploaded[bucket] = true
		if err := motoPut(ctx, s.Endpoint+"/"+bucket+"/"+key, zipFile); err != nil {
			return nil, fmt.Errorf("upload the code of %s: %w", id, err)
		}
	}

	params := map[string]string{"GatewayApiBaseUrl": s.GatewayURL}
	for k, v := range opts.Parameters {
		params[k] = v
	}
	if err := ts.create(ctx, opts.Template, params); err != nil {
		return nil, err
	}
	supported, err := cfnTypes(ctx, s.Endpoint)
	if err != nil {
		return nil, err
	}
	for id, res := range tpl.Resources {
		if !supported[res.Type] {
			ts.NotCreated = append(ts.NotCreated, id+": "+res.Type)
		}
	}
	sort.Strings(ts.NotCreated)

	// The functions, as moto's Lambda holds them.
	run := map[string]string{} // logical id -> folder
	ts.FunctionConfigs = map[string]*lambda.GetFunctionConfigurationOutput{}
	for id, res := range tpl.Resources {
		name, ok := ts.Resources[id]
		if res.Type != "AWS::Lambda::Function" || !ok {
			continue
		}
		cfg, err := r.clients.lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("the stack's function %s (%s): %w", id, name, err)
		}
		ts.FunctionConfigs[id] = cfg
		if len(opts.Run) == 0 || slices.Contains(opts.Run, id) {
			folder, ok := folders[id]
			if !ok {
				return nil, fmt.Errorf("the stack's function %s: the Makefile has no build-%s target naming ./functions/<folder>", id, id)
			}
			run[id] = folder
		}
	}
	for _, id := range opts.Run {
		if _, ok := run[id]; !ok {
			return nil, fmt.Errorf("deploy the template: the stack has no function %s to run", id)
		}
	}
	var names []string
	for _, folder := range run {
		names = append(names, folder)
	}
	sort.Strings(names)
	if s.paths, err = BuildFunctions(ctx, opts.RepoRoot, filepath.Join(s.WorkDir, "functions"), names); err != nil {
		return nil, err
	}
	for id, folder := range run {
		cfg := ts.FunctionConfigs[id]
		f, err := startFunction(folder, folder, r.Name, s.paths[folder], s.rie, 1, ts.functionEnv(cfg), opts.Logs)
		if err != nil {
			return nil, err
		}
		f.FunctionName, f.ARN, f.Endpoint = aws.ToString(cfg.FunctionName), aws.ToString(cfg.FunctionArn), s.Endpoint
		r.Functions[folder] = f
	}
	front.set(s.regions)

	maps, err := r.clients.lambda.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{})
	if err != nil {
		return nil, fmt.Errorf("the stack's event-source mappings: %w", err)
	}
	ts.Mappings = maps.EventSourceMappings
	return ts, nil
}

// functionEnv is what the function sees on Lambda: the variables the stack
// gave it, the AWS_* variables Lambda sets (here: moto and its credentials),
// its name and its timeout.
func (ts *TemplateStack) functionEnv(cfg *lambda.GetFunctionConfigurationOutput) []string {
	env := []string{
		"AWS_ENDPOINT_URL=" + ts.Endpoint,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_LAMBDA_FUNCTION_NAME=" + aws.ToString(cfg.FunctionName),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(aws.ToInt32(cfg.Timeout))),
	}
	if cfg.Environment != nil {
		keys := make([]string, 0, len(cfg.Environment.Variables))
		for k := range cfg.Environment.Variables {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, k+"="+cfg.Environment.Variables[k])
		}
	}
	return env
}

// create creates the stack and reads its outputs and resources.
func (ts *TemplateStack) create(ctx context.Context, body []byte, params map[string]string) error {
	cf := cloudformation.NewFromConfig(ts.Config())
	in := &cloudformation.CreateStackInput{
		StackName:    aws.String(ts.StackName),
		TemplateBody: aws.String(string(body)),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam, cfntypes.CapabilityCapabilityNamedIam},
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.Parameters = append(in.Parameters, cfntypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(params[k])})
	}
	if _, err := cf.CreateStack(ctx, in); err != nil {
		return fmt.Errorf("create stack %s in moto's CloudFormation: %w", ts.StackName, err)
	}
	desc, err := cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(ts.StackName)})
	if err != nil {
		return fmt.Errorf("describe stack %s: %w", ts.StackName, err)
	}
	if len(desc.Stacks) != 1 {
		return fmt.Errorf("describe stack %s: %d stacks", ts.StackName, len(desc.Stacks))
	}
	st := desc.Stacks[0]
	if st.StackStatus != cfntypes.StackStatusCreateComplete {
		return fmt.Errorf("create stack %s: %s: %s", ts.StackName, st.StackStatus, aws.ToString(st.StackStatusReason))
	}
	ts.Outputs = map[string]string{}
	for _, o := range st.Outputs {
		ts.Outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	ts.Resources = map[string]string{}
	p := cloudformation.NewListStackResourcesPaginator(cf, &cloudformation.ListStackResourcesInput{StackName: aws.String(ts.StackName)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list the resources of stack %s: %w", ts.StackName, err)
		}
		for _, r := range page.StackResourceSummaries {
			if id := aws.ToString(r.LogicalResourceId); id != "" {
				ts.Resources[id] = aws.ToString(r.PhysicalResourceId)
			}
		}
	}
	return nil
}

// StartMappings polls the queue of each of the stack's event-source
// mappings for its function, with the mapping's batch size, as Lambda
// does. A mapping must report batch item failures (the local poller
// implements Lambda's partial batch responses only) and name a function
// that runs.
func (ts *TemplateStack) StartMappings(ctx context.Context) error {
	r := ts.primary()
	var pollers []*Poller
	for _, m := range ts.Mappings {
		uuid := aws.ToString(m.UUID)
		if !slices.Contains(m.FunctionResponseTypes, lambdatypes.FunctionResponseTypeReportBatchItemFailures) {
			return fmt.Errorf("event-source mapping %s: FunctionResponseTypes %v lacks ReportBatchItemFailures", uuid, m.FunctionResponseTypes)
		}
		var fn *Function
		for _, f := range r.Functions {
			if f.ARN == aws.ToString(m.FunctionArn) {
				fn = f
			}
		}
		if fn == nil {
			return fmt.Errorf("event-source mapping %s: its function %s does not run", uuid, aws.ToString(m.FunctionArn))
		}
		arn := aws.ToString(m.EventSourceArn)
		queueName := arn[strings.LastIndex(arn, ":")+1:]
		q, err := r.clients.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queueName)})
		if err != nil {
			return fmt.Errorf("event-source mapping %s: its queue %s: %w", uuid, arn, err)
		}
		pollers = append(pollers, &Poller{
			SQS: r.clients.sqs, QueueURL: aws.ToString(q.QueueUrl), QueueARN: arn, Region: r.Name,
			Function: fn, BatchSize: aws.ToInt32(m.BatchSize), WaitTime: 2 * time.Second, Logger: ts.logger(),
		})
	}
	runCtx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	for _, p := range pollers {
		ts.wg.Add(1)
		go func() { defer ts.wg.Done(); p.Run(runCtx) }()
	}
	ts.Pollers = pollers
	return nil
}

// CreateAdminSecret creates the gateway's admin secret name (holding the
// reference gateway's admin token), tagged keyrotor:admin-for = adminFor.
func (ts *TemplateStack) CreateAdminSecret(ctx context.Context, name, adminFor string) error {
	admin, _ := json.Marshal(map[string]string{"key": ts.adminToken})
	if _, err := ts.SecretsManager().CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		SecretString: aws.String(string(admin)),
		Tags:         []smtypes.Tag{{Key: aws.String(TagAdminFor), Value: aws.String(adminFor)}},
	}); err != nil {
		return fmt.Errorf("create secret %s: %w", name, err)
	}
	return nil
}

// makefileFunctionFolders reads the Makefile's build-<LogicalId> targets
// (what `sam build` runs) and returns the folder of functions/ each builds,
// by logical id.
func makefileFunctionFolders(makefile string) (map[string]string, error) {
	b, err := os.ReadFile(makefile)
	if err != nil {
		return nil, fmt.Errorf("read the functions' build targets: %w", err)
	}
	target := regexp.MustCompile(`^build-([A-Za-z0-9]+):`)
	folder := regexp.MustCompile(`\./functions/([a-z0-9]+)\b`)
	out := map[string]string{}
	id := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if m := target.FindStringSubmatch(line); m != nil {
			id = m[1]
			continue
		}
		if id == "" || !strings.HasPrefix(line, "\t") {
			id = ""
			continue
		}
		if m := folder.FindStringSubmatch(line); m != nil {
			out[id] = m[1]
		}
	}
	return out, nil
}

// startCFNLauncher starts cfn_launcher.py (beside moto_launcher.py in
// workDir) as startLauncher starts moto_launcher.py.
func startCFNLauncher(workDir, lambdaEndpoint string, logs io.Writer) (*process, string, error) {
	if err := os.WriteFile(filepath.Join(workDir, "moto_launcher.py"), motoLauncher, 0o644); err != nil {
		return nil, "", fmt.Errorf("write the moto launcher: %w", err)
	}
	launcher := filepath.Join(workDir, "cfn_launcher.py")
	if err := os.WriteFile(launcher, cfnLauncher, 0o644); err != nil {
		return nil, "", fmt.Errorf("write the CloudFormation launcher: %w", err)
	}
	return runLauncher(launcher, lambdaEndpoint, logs)
}

// cfnTypes asks the launcher which resource types moto's CloudFormation
// creates.
func cfnTypes(ctx context.Context, endpoint string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/moto-api/keyrotor/cfn-types", nil)
	if err != nil {
		return nil, fmt.Errorf("moto's CloudFormation types: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("moto's CloudFormation types: %w", err)
	}
	defer resp.Body.Close()
	var out struct{ Types []string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("moto's CloudFormation types: %s: %v", resp.Status, err)
	}
	m := map[string]bool{}
	for _, t := range out.Types {
		m[t] = true
	}
	return m, nil
}

// motoPut PUTs body to moto's S3 (path-style), signed with the stack's
// credentials.
func motoPut(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", Region, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return errors.New(resp.Status + ": " + string(msg))
	}
	return nil
}
