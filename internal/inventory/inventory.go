// Package inventory reads the API key inventory of the rotation guide
// (Step 1's api_keys and Step 4's rotation_schedules, in one YAML file),
// validates every field with the line it sits on, and turns it into what
// Secrets Manager should hold: tags on each secret and its rotation (the
// rotation function, a cron() or rate() ScheduleExpression, a Duration
// window). Plan compares that with the secrets as they are; Apply changes
// only what differs, so applying twice changes nothing the second time.
//
// The schedule's 5-field cron becomes cron(0 H DoM Mon DoW *) with ? in the
// unrestricted day field; what Secrets Manager cannot run (a minute other
// than 0, both day fields restricted, rotations closer than 4 hours) is an
// error. A vendor without a key API (Stripe) cannot be rotated by a
// function: its schedule becomes a key-age reminder (tags `keyrotor status`
// reads), not an error.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/keyrotor/keyrotor/audit"
)

// Inventory is a parsed inventory file.
type Inventory struct {
	APIKeys   []APIKey
	Schedules []Schedule
}

// APIKey is one entry of api_keys.
type APIKey struct {
	Line              int
	Name              string
	Provider          Provider
	Environment       string
	UsedBy            []string
	VaultPath         string
	RotationFrequency time.Duration
	SupportsDualKey   bool
	ProviderAPI       string
	Criticality       string
	// IAMUser (iam_user, IAM keys only) is the IAM user the secret rotates:
	// apply binds it to the secret (the user's tag keyrotor:secret = the
	// secret's ARN), as the rotation functions require.
	IAMUser string
}

// Schedule is one entry of rotation_schedules.
type Schedule struct {
	Line   int
	Secret string
	// APIKey names the api_keys entry this schedule belongs to (optional;
	// by default the entry whose vault_path is Secret, else the only entry
	// of the same provider).
	APIKey            string
	Provider          Provider
	Cron              Cron
	CronText          string
	GracePeriod       time.Duration
	Window            time.Duration // 0: the default window
	AlertOnFailure    bool
	RollbackOnFailure bool
}

// Issue is one problem found in the file, with the line it is on.
type Issue struct {
	Line int
	Msg  string
}

// Error is every issue found in a file.
type Error struct {
	File   string
	Issues []Issue
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteByte('\n')
		}
		if is.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.File, is.Line, is.Msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.File, is.Msg)
		}
	}
	return b.String()
}

// Summary says how many problems e holds: "FILE: 1 problem".
func (e *Error) Summary() string {
	return fmt.Sprintf("%s: %s", e.File, Count(len(e.Issues), "problem"))
}

// sortIssues orders issues by line, keeping the order of those on one line.
func sortIssues(issues []Issue) {
	sort.SliceStable(issues, func(i, j int) bool { return issues[i].Line < issues[j].Line })
}

// Criticality levels accepted in api_keys.
var criticalities = []string{"low", "medium", "high", "critical"}

// secretName is what Secrets Manager accepts in a secret name.
var secretName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)

// validTagValue reports whether s is what a Secrets Manager tag value may
// hold: at most 256 letters, separators, numbers and _ . : / = + - @. (A
// regexp with these Unicode classes costs tens of milliseconds to compile
// at every start of a program that links this package.)
func validTagValue(s string) bool {
	if utf8.RuneCountInString(s) > 256 {
		return false
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.In(r, unicode.Z, unicode.N) && !strings.ContainsRune("_.:/=+-@", r) {
			return false
		}
	}
	return true
}

// emptyInventory is the issue of a file that holds no YAML document.
const emptyInventory = "the file is empty: an inventory is a mapping with api_keys and/or rotation_schedules (docs/operator.md)"

// Parse reads and validates an inventory. file names it in errors. A
// returned *Error lists every issue found, sorted by line; the inventory
// returned with it holds the entries that are valid, so that the checks
// that need AWS can still run on them (validate reports everything in one
// pass). It is nil when the file is not YAML at all.
func Parse(file string, data []byte) (*Inventory, error) {
	p := &parser{}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Issues: []Issue{{Msg: emptyInventory}}}
		}
		return nil, &Error{File: file, Issues: []Issue{{Line: yamlErrorLine(err), Msg: "not valid YAML: " + err.Error()}}}
	}
	inv := &Inventory{}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "the file must be a mapping with api_keys and/or rotation_schedules")
		return nil, &Error{File: file, Issues: p.issues}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "api_keys":
			for _, item := range p.items(k, v) {
				key, ok := p.apiKey(item)
				switch {
				case ok:
					inv.APIKeys = append(inv.APIKeys, key)
				case key.Name != "":
					p.invalidKeys = append(p.invalidKeys, key)
				}
			}
		case "rotation_schedules":
			for _, item := range p.items(k, v) {
				if s, ok := p.schedule(item); ok {
					inv.Schedules = append(inv.Schedules, s)
				}
			}
		default:
			p.add(k.Line, fmt.Sprintf("unknown section %q (want api_keys or rotation_schedules)", k.Value))
		}
	}
	if len(inv.APIKeys) == 0 && len(inv.Schedules) == 0 && len(p.issues) == 0 {
		p.add(root.Line, "the inventory has no api_keys and no rotation_schedules")
	}
	p.crossCheck(inv)
	if len(p.issues) > 0 {
		sortIssues(p.issues)
		return inv, &Error{File: file, Issues: p.issues}
	}
	return inv, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func yamlErrorLine(err error) int {
	var n int
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &n)
	}
	return n
}

type parser struct {
	issues []Issue
	// invalidKeys are the api_keys entries with a field error (and a
	// name): still names that exist, for the checks across entries.
	invalidKeys []APIKey
}

func (p *parser) add(line int, msg string) { p.issues = append(p.issues, Issue{Line: line, Msg: msg}) }

func (p *parser) items(k, v *yaml.Node) []*yaml.Node {
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, k.Value+" must be a list")
		return nil
	}
	var out []*yaml.Node
	for _, item := range v.Content {
		if item.Kind != yaml.MappingNode {
			p.add(item.Line, "each entry of "+k.Value+" must be a mapping of fields")
			continue
		}
		out = append(out, item)
	}
	return out
}

// fields reads a mapping's fields, reporting unknown and duplicate ones.
type fields struct {
	p      *parser
	node   *yaml.Node
	values map[string]*yaml.Node
	keys   map[string]*yaml.Node
}

func (p *parser) fields(n *yaml.Node, known ...string) *fields {
	f := &fields{p: p, node: n, values: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(known, k.Value) {
			p.add(k.Line, fmt.Sprintf("unknown field %q (known: %s)", k.Value, strings.Join(known, ", ")))
			continue
		}
		if _, dup := f.values[k.Value]; dup {
			p.add(k.Line, fmt.Sprintf("field %q appears twice", k.Value))
			continue
		}
		f.values[k.Value], f.keys[k.Value] = v, k
	}
	return f
}

// line is the line of a field's value, or of the entry when it is absent.
func (f *fields) line(name string) int {
	if v, ok := f.values[name]; ok {
		return v.Line
	}
	return f.node.Line
}

// str reads a scalar string field; required fields must be present and non-empty.
func (f *fields) str(name string, required bool) (string, bool) {
	v, ok := f.values[name]
	if !ok {
		if required {
			f.p.add(f.node.Line, fmt.Sprintf("field %q is missing", name))
			return "", false
		}
		return "", true
	}
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		f.p.add(v.Line, fmt.Sprintf("field %q must be a string", name))
		return "", false
	}
	if required && strings.TrimSpace(v.Value) == "" {
		f.p.add(v.Line, fmt.Sprintf("field %q is empty", name))
		return "", false
	}
	return v.Value, true
}

func (f *fields) boolean(name string, required bool, def bool) (bool, bool) {
	v, ok := f.values[name]
	if !ok {
		if required {
			f.p.add(f.node.Line, fmt.Sprintf("field %q is missing", name))
			return false, false
		}
		return def, true
	}
	var b bool
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(&b) != nil {
		f.p.add(v.Line, fmt.Sprintf("field %q must be true or false, not %q", name, v.Value))
		return false, false
	}
	return b, true
}

func (f *fields) strings(name string) ([]string, bool) {
	v, ok := f.values[name]
	if !ok {
		return nil, true
	}
	if v.Kind != yaml.SequenceNode {
		f.p.add(v.Line, fmt.Sprintf("field %q must be a list of strings", name))
		return nil, false
	}
	out := make([]string, 0, len(v.Content))
	good := true
	for _, item := range v.Content {
		if item.Kind != yaml.ScalarNode || strings.TrimSpace(item.Value) == "" {
			f.p.add(item.Line, fmt.Sprintf("field %q must be a list of non-empty strings", name))
			good = false
			continue
		}
		out = append(out, item.Value)
	}
	return out, good
}

func (f *fields) provider(name string) (Provider, bool) {
	s, ok := f.str(name, true)
	if !ok {
		return Provider{}, false
	}
	prov, ok := LookupProvider(s)
	if !ok {
		f.p.add(f.line(name), fmt.Sprintf("unknown provider %q (known: %s)", s, strings.Join(ProviderNames(), ", ")))
		return Provider{}, false
	}
	return prov, true
}

// tagSafe reports an issue when s cannot be a Secrets Manager tag value.
func (f *fields) tagSafe(name, s string) bool {
	if !validTagValue(s) {
		f.p.add(f.line(name), fmt.Sprintf("field %q (%q) may hold only letters, digits, spaces and _ . : / = + - @ (it is stored as a tag), at most 256 characters", name, s))
		return false
	}
	return true
}

var apiKeyFields = []string{"name", "provider", "environment", "used_by", "vault_path", "rotation_frequency", "supports_dual_key", "provider_api", "criticality", "iam_user"}

// iamUserName is what IAM accepts in a user name.
var iamUserName = regexp.MustCompile(`^[A-Za-z0-9_+=,.@-]{1,64}$`)

func (p *parser) apiKey(n *yaml.Node) (APIKey, bool) {
	f := p.fields(n, apiKeyFields...)
	k := APIKey{Line: n.Line}
	ok := true
	check := func(good bool) {
		ok = ok && good
	}
	var good bool
	k.Name, good = f.str("name", true)
	check(good && f.tagSafe("name", k.Name))
	k.Provider, good = f.provider("provider")
	check(good)
	k.Environment, good = f.str("environment", true)
	check(good && f.tagSafe("environment", k.Environment))
	k.UsedBy, good = f.strings("used_by")
	check(good && f.tagSafe("used_by", strings.Join(k.UsedBy, " ")))
	k.VaultPath, good = f.str("vault_path", true)
	if good && !secretName.MatchString(k.VaultPath) {
		p.add(f.line("vault_path"), fmt.Sprintf("vault_path %q is not a Secrets Manager secret name (letters, digits and /_+=.@- only)", k.VaultPath))
		good = false
	}
	check(good)
	freq, good := f.str("rotation_frequency", true)
	if good {
		d, err := audit.ParseInterval(freq)
		switch {
		case err != nil:
			p.add(f.line("rotation_frequency"), "rotation_frequency: "+err.Error())
			good = false
		case d < MinRotationInterval:
			p.add(f.line("rotation_frequency"), fmt.Sprintf("rotation_frequency %s is shorter than 4 hours, the shortest interval Secrets Manager rotates at", freq))
			good = false
		}
		k.RotationFrequency = d
	}
	check(good)
	k.SupportsDualKey, good = f.boolean("supports_dual_key", false, true)
	check(good)
	if good && !k.SupportsDualKey && k.Provider.KeyAPI {
		p.add(f.line("supports_dual_key"), fmt.Sprintf("%s: supports_dual_key is false, but keyrotor rotates with two live keys only (zero downtime); rotate this key by hand", k.Name))
		ok = false
	}
	k.ProviderAPI, good = f.str("provider_api", false)
	if good && k.ProviderAPI != "" {
		if u, err := url.Parse(k.ProviderAPI); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			p.add(f.line("provider_api"), fmt.Sprintf("provider_api %q is not an absolute http(s) URL", k.ProviderAPI))
			good = false
		}
	}
	check(good)
	k.Criticality, good = f.str("criticality", false)
	if good && k.Criticality != "" && !slices.Contains(criticalities, k.Criticality) {
		p.add(f.line("criticality"), fmt.Sprintf("criticality %q is not one of %s", k.Criticality, strings.Join(criticalities, ", ")))
		good = false
	}
	check(good)
	k.IAMUser, good = f.str("iam_user", false)
	switch {
	case !good:
	case k.IAMUser == "":
	case k.Provider.Name != iamProvider:
		p.add(f.line("iam_user"), fmt.Sprintf("iam_user is for AWS IAM keys only, not %s", k.Provider.Name))
		good = false
	case !iamUserName.MatchString(k.IAMUser):
		p.add(f.line("iam_user"), fmt.Sprintf("iam_user %q is not an IAM user name (letters, digits and _+=,.@- only, at most 64)", k.IAMUser))
		good = false
	}
	check(good)
	return k, ok
}

var scheduleFields = []string{"secret", "api_key", "provider", "schedule", "grace_period", "window", "alert_on_failure", "rollback_on_failure"}

func (p *parser) schedule(n *yaml.Node) (Schedule, bool) {
	f := p.fields(n, scheduleFields...)
	s := Schedule{Line: n.Line}
	ok := true
	check := func(good bool) { ok = ok && good }
	var good bool
	s.Secret, good = f.str("secret", true)
	if good && !secretName.MatchString(s.Secret) {
		p.add(f.line("secret"), fmt.Sprintf("secret %q is not a Secrets Manager secret name (letters, digits and /_+=.@- only)", s.Secret))
		good = false
	}
	check(good)
	s.APIKey, good = f.str("api_key", false)
	check(good)
	s.Provider, good = f.provider("provider")
	check(good)
	s.CronText, good = f.str("schedule", true)
	if good {
		c, err := ParseCron(s.CronText)
		if err != nil {
			p.add(f.line("schedule"), err.Error())
			good = false
		}
		s.Cron = c
	}
	check(good)
	grace, good := f.str("grace_period", true)
	if good {
		d, err := audit.ParseInterval(grace)
		if err != nil {
			p.add(f.line("grace_period"), "grace_period: "+err.Error())
			good = false
		}
		s.GracePeriod = d
		if good && s.Cron.MinGap > 0 && d >= s.Cron.MinGap {
			p.add(f.line("grace_period"), fmt.Sprintf("grace_period %s is not shorter than the rotation interval (%s apart at the closest): the old key would outlive the next rotation", grace, formatInterval(s.Cron.MinGap)))
			good = false
		}
	}
	check(good)
	window, good := f.str("window", false)
	if good && window != "" {
		d, err := audit.ParseInterval(window)
		switch {
		case err != nil:
			p.add(f.line("window"), "window: "+err.Error())
			good = false
		case d < time.Hour || d > 24*time.Hour || d%time.Hour != 0:
			p.add(f.line("window"), fmt.Sprintf("window %s must be a whole number of hours from 1h to 24h", window))
			good = false
		case s.Cron.MinGap > 0 && (d > s.Cron.MinGap || s.Cron.LastHour*int(time.Hour)+int(d) > 24*int(time.Hour)):
			p.add(f.line("window"), fmt.Sprintf("window %s must not reach into the next rotation window or past midnight UTC (the last window opens at %02d:00)", window, s.Cron.LastHour))
			good = false
		}
		s.Window = d
	}
	check(good)
	s.AlertOnFailure, good = f.boolean("alert_on_failure", false, true)
	check(good)
	s.RollbackOnFailure, good = f.boolean("rollback_on_failure", false, false)
	check(good)
	return s, ok
}

// crossCheck looks across entries: unique names and secrets, schedules that
// name an api_key that exists, providers that agree, grace periods shorter
// than the api key's rotation frequency.
func (p *parser) crossCheck(inv *Inventory) {
	names := map[string]int{}
	listed := slices.SortedFunc(slices.Values(slices.Concat(inv.APIKeys, p.invalidKeys)), func(a, b APIKey) int { return a.Line - b.Line })
	for _, k := range listed {
		if first, dup := names[k.Name]; dup {
			p.add(k.Line, fmt.Sprintf("api key %q is already listed on line %d", k.Name, first))
			continue
		}
		names[k.Name] = k.Line
	}
	secrets := map[string]int{}
	for _, s := range inv.Schedules {
		if first, dup := secrets[s.Secret]; dup {
			p.add(s.Line, fmt.Sprintf("secret %q already has a schedule on line %d (Secrets Manager holds one schedule per secret)", s.Secret, first))
		}
		secrets[s.Secret] = s.Line
		if s.APIKey != "" {
			if _, ok := names[s.APIKey]; !ok {
				p.add(s.Line, fmt.Sprintf("api_key %q is not in api_keys", s.APIKey))
				continue
			}
		}
		k, ok := inv.keyOf(s)
		if !ok {
			continue
		}
		if k.Provider.Name != s.Provider.Name {
			p.add(s.Line, fmt.Sprintf("schedule for %s says provider %q, its api key %q (line %d) says %q", s.Secret, s.Provider.Name, k.Name, k.Line, k.Provider.Name))
		}
		if s.GracePeriod >= k.RotationFrequency && k.RotationFrequency > 0 {
			p.add(s.Line, fmt.Sprintf("grace_period %s is not shorter than the rotation_frequency %s of api key %q (line %d)", formatInterval(s.GracePeriod), formatInterval(k.RotationFrequency), k.Name, k.Line))
		}
	}
	for _, k := range inv.APIKeys {
		if _, scheduled := inv.scheduleOf(k); scheduled {
			continue
		}
		if first, dup := secrets[k.VaultPath]; dup {
			p.add(k.Line, fmt.Sprintf("secret %q is already managed by the entry on line %d", k.VaultPath, first))
		}
		secrets[k.VaultPath] = k.Line
	}
}

// keyOf returns the api_keys entry of a schedule: the one it names, else the
// one whose vault_path is its secret, else the only one of its provider.
func (inv *Inventory) keyOf(s Schedule) (APIKey, bool) {
	if s.APIKey != "" {
		for _, k := range inv.APIKeys {
			if k.Name == s.APIKey {
				return k, true
			}
		}
		return APIKey{}, false
	}
	for _, k := range inv.APIKeys {
		if k.VaultPath == s.Secret || k.Name == s.Secret {
			return k, true
		}
	}
	var match []APIKey
	for _, k := range inv.APIKeys {
		if k.Provider.Name == s.Provider.Name {
			match = append(match, k)
		}
	}
	if len(match) == 1 {
		if other, ok := inv.explicitSchedule(match[0]); ok && other.Secret != s.Secret {
			return APIKey{}, false
		}
		return match[0], true
	}
	return APIKey{}, false
}

// explicitSchedule is the schedule that names k or its vault_path.
func (inv *Inventory) explicitSchedule(k APIKey) (Schedule, bool) {
	for _, s := range inv.Schedules {
		if s.APIKey == k.Name || (s.APIKey == "" && (s.Secret == k.VaultPath || s.Secret == k.Name)) {
			return s, true
		}
	}
	return Schedule{}, false
}

// scheduleOf returns the schedule that belongs to k.
func (inv *Inventory) scheduleOf(k APIKey) (Schedule, bool) {
	for _, s := range inv.Schedules {
		if other, ok := inv.keyOf(s); ok && other.Line == k.Line {
			return s, true
		}
	}
	return Schedule{}, false
}
