package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jedib0t/go-pretty/v6/progress"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/internal/operator"
)

// fleetFlags are rotate's flags over a selection.
type fleetFlags struct {
	providers, criticality, usedBy []string
	tags, maxInFlight              []string
	inventory, fromFile            string
	dryRun, yes                    bool
	incident, report               string
}

func (ff *fleetFlags) register(f *pflag.FlagSet) {
	f.StringSliceVar(&ff.providers, "provider", nil, "select the secrets of these providers (repeatable, comma-separated)")
	f.StringArrayVar(&ff.tags, "tag", nil, "select the secrets with this tag key=value (repeatable: any of them)")
	f.StringSliceVar(&ff.criticality, "criticality", nil, "select by criticality: low, medium, high, critical (comma-separated)")
	f.StringSliceVar(&ff.usedBy, "used-by", nil, "select the secrets used by this application (the keyrotor:used-by tag, or --inventory's used_by)")
	f.StringVar(&ff.inventory, "inventory", "", "read --used-by and --criticality from this inventory file")
	f.StringVar(&ff.fromFile, "from-file", "", "select the names or globs listed in FILE, one a line (- for standard input)")
	f.BoolVar(&ff.dryRun, "dry-run", false, "print the plan and change nothing")
	f.BoolVar(&ff.yes, "yes", false, "rotate a selection without asking")
	f.StringVar(&ff.incident, "incident", "", "the run's id: secrets done in it are skipped by a re-run (generated when absent)")
	f.StringArrayVar(&ff.maxInFlight, "max-in-flight", nil, fmt.Sprintf("provider=N: at most N rotations of that provider at a time (default %d)", operator.DefaultProviderFlight))
	f.StringVar(&ff.report, "report", "", "write the JSON report to FILE")
}

// fleetOnly says whether a flag that only a selection run has was given,
// so that "rotate SECRET --dry-run" plans instead of rotating.
func (ff *fleetFlags) fleetOnly(cmd *cobra.Command) bool {
	for _, n := range []string{"dry-run", "yes", "incident", "report", "max-in-flight"} {
		if cmd.Flags().Changed(n) {
			return true
		}
	}
	return false
}

// selector builds the selection from the arguments and flags.
func (ff *fleetFlags) selector(cmd *cobra.Command, args []string) (operator.Selector, error) {
	sel := operator.Selector{Names: append([]string(nil), args...), Providers: ff.providers, Criticalities: ff.criticality, UsedBy: ff.usedBy}
	for _, t := range ff.tags {
		f, err := operator.ParseTagFilter(t)
		if err != nil {
			return sel, err
		}
		sel.Tags = append(sel.Tags, f)
	}
	if ff.fromFile != "" {
		names, err := readNames(cmd, ff.fromFile)
		if err != nil {
			return sel, err
		}
		if len(names) == 0 {
			return sel, fmt.Errorf("--from-file %s lists no name", ff.fromFile)
		}
		sel.Names = append(sel.Names, names...)
	}
	if ff.inventory != "" {
		data, err := os.ReadFile(ff.inventory)
		if err != nil {
			return sel, fmt.Errorf("--inventory: %w", err)
		}
		inv, err := inventory.Parse(ff.inventory, data)
		if err != nil {
			return sel, fmt.Errorf("--inventory: %w", err)
		}
		sel.Inventory = inv
	}
	if sel.Empty() {
		return sel, errors.New("name a secret, or select secrets with names, globs, --provider, --tag, --criticality, --used-by or --from-file")
	}
	return sel, nil
}

// readNames reads one name or glob a line; blank lines and # comments are
// skipped.
func readNames(cmd *cobra.Command, file string) ([]string, error) {
	var r io.Reader
	if file == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--from-file: %w", err)
		}
		defer f.Close()
		r = f
	}
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			names = append(names, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--from-file %s: %w", file, err)
	}
	return names, nil
}

// stdinIsTerminal says whether the confirmation can be asked. Tests
// replace it.
var stdinIsTerminal = func(r any) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func parseMaxInFlight(vals []string) (map[string]int, error) {
	m := map[string]int{}
	for _, v := range vals {
		p, n, ok := strings.Cut(v, "=")
		k, err := strconv.Atoi(n)
		if !ok || p == "" || err != nil || k < 1 {
			return nil, fmt.Errorf("--max-in-flight %q: want provider=N, N at least 1", v)
		}
		m[p] = k
	}
	return m, nil
}

// runFleet is rotate over a selection: plan, confirm, rotate, report.
func runFleet(cmd *cobra.Command, sel operator.Selector, ff fleetFlags, ropts operator.RotateOptions, asJSON bool) error {
	maxIn, err := parseMaxInFlight(ff.maxInFlight)
	if err != nil {
		return usageError{err}
	}
	stderr := cmd.ErrOrStderr()
	prompt := sel.MayMatchMany() && !ff.dryRun && !ff.yes
	if prompt && !stdinIsTerminal(cmd.InOrStdin()) {
		return usageError{errors.New("the selection may match more than one secret and standard input is not a terminal: add --yes to rotate without asking (or --dry-run to see the plan); nothing was changed")}
	}
	op, err := newOperator(cmd)
	if err != nil {
		return err
	}
	incident := ff.incident
	if incident == "" {
		incident = "inc-" + operator.NewUUID()[:8]
		if !ff.dryRun {
			fmt.Fprintf(stderr, "incident %s: re-run with --incident %s to resume\n", incident, incident)
		}
	}
	opts := operator.FleetOptions{Selector: sel, Emergency: ropts.Emergency, Incident: incident, Timeout: ropts.Timeout, MaxInFlight: maxIn}
	plan, err := op.Plan(cmd.Context(), opts)
	if err != nil {
		return err
	}
	if ff.dryRun || prompt {
		operator.SortItems(plan)
		if ff.dryRun && asJSON {
			rep := &operator.FleetReport{Incident: incident, Emergency: opts.Emergency, DryRun: true, Secrets: plan, Counts: counts(plan)}
			if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
				return err
			}
			return writeReport(ff.report, rep)
		}
		w := cmd.OutOrStdout()
		if prompt {
			w = stderr
		}
		printPlan(w, plan, opts.Emergency)
	}
	if ff.dryRun {
		return nil
	}
	if prompt {
		n := counts(plan)[operator.OutcomeWillRotate]
		fmt.Fprintf(stderr, "Rotate these %d secrets%s? Type yes: ", n, map[bool]string{true: " in an emergency (their old keys die at once)"}[opts.Emergency])
		line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return &operator.RefusedError{Op: "rotate", Secret: "the selection", Reason: "not confirmed; nothing was changed"}
		}
	}
	done := liveProgress(stderr, plan, asJSON)
	opts.Progress = done.row
	rep, err := op.RotateFleet(cmd.Context(), opts)
	done.stop()
	if err != nil {
		return err
	}
	operator.SortItems(rep.Secrets)
	if asJSON {
		err = printJSON(cmd.OutOrStdout(), rep)
	} else {
		printReport(cmd.OutOrStdout(), rep)
	}
	if err != nil {
		return err
	}
	if err := writeReport(ff.report, rep); err != nil {
		return err
	}
	return fleetExit(rep)
}

func counts(items []operator.FleetItem) map[string]int {
	m := map[string]int{}
	for _, it := range items {
		m[it.Outcome]++
	}
	return m
}

// fleetExit turns the report's exit code into the error run maps to it.
func fleetExit(rep *operator.FleetReport) error {
	c := rep.Counts
	summary := fmt.Sprintf("incident %s: %d rotated, %d skipped (done before), %d failed, %d not started, %d need a person",
		rep.Incident, c[operator.OutcomeRotated], c[operator.OutcomeSkipped], c[operator.OutcomeFailed], c[operator.OutcomeNotStarted], c[operator.OutcomeManual])
	switch rep.ExitCode() {
	case operator.ExitFailure:
		return fmt.Errorf("%s; re-run with --incident %s to retry", summary, rep.Incident)
	case operator.ExitProblems:
		return problemsError{summary + " (listed above)"}
	case operator.ExitRefused:
		return &operator.RefusedError{Op: "rotate", Secret: "the selection", Reason: "nothing can be rotated: " + summary}
	}
	return nil
}

func writeReport(file string, rep *operator.FleetReport) error {
	if file == "" {
		return nil
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	if err := printJSON(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("--report: %w", err)
	}
	return f.Close()
}

func printPlan(w io.Writer, plan []operator.FleetItem, emergency bool) {
	how := "rotate"
	if emergency {
		how = "emergency rotate (old keys revoked at once)"
	}
	if len(plan) == 0 {
		fmt.Fprintln(w, "plan: no managed secret matches the selection")
		return
	}
	c := counts(plan)
	fmt.Fprintf(w, "plan: %d secrets: %d to %s, %d already done in this incident, %d cannot be rotated here\n",
		len(plan), c[operator.OutcomeWillRotate], how, c[operator.OutcomeSkipped], c[operator.OutcomeManual])
	for _, it := range plan {
		switch it.Outcome {
		case operator.OutcomeWillRotate:
			fmt.Fprintf(w, "  %-40s %-8s rotate (key %s) with %s\n", it.Secret, it.Provider, dashIfEmpty(it.OldKeyID), it.Function)
		case operator.OutcomeSkipped:
			fmt.Fprintf(w, "  %-40s %-8s skip: %s\n", it.Secret, it.Provider, it.Reason)
		default:
			fmt.Fprintf(w, "  %-40s %-8s CANNOT: %s\n", it.Secret, it.Provider, it.Reason)
		}
	}
}

func printReport(w io.Writer, rep *operator.FleetReport) {
	fmt.Fprintf(w, "incident %s: %d secrets\n", rep.Incident, len(rep.Secrets))
	var live []string
	for _, it := range rep.Secrets {
		dead := ""
		if it.OldKeysDead != nil {
			dead = map[bool]string{true: "; old keys confirmed dead", false: "; OLD KEYS STILL LIVE"}[*it.OldKeysDead]
		}
		line := fmt.Sprintf("  %-40s %-8s %-11s", it.Secret, it.Provider, it.Outcome)
		if it.NewKeyID != "" {
			line += " new key " + it.NewKeyID
		}
		line += dead
		if it.Reason != "" {
			line += ": " + it.Reason
		}
		fmt.Fprintln(w, line)
		for _, k := range it.LiveKeys {
			live = append(live, fmt.Sprintf("  %s   # %s, key %s (%s)", k.Command, it.Secret, k.KeyID, k.State))
		}
	}
	if len(live) > 0 {
		fmt.Fprintln(w, "keys still live; kill each now:")
		for _, l := range live {
			fmt.Fprintln(w, l)
		}
	}
}

// fleetProgress shows the run: bars per provider (go-pretty) on a
// terminal, else one line per secret done.
type fleetProgress struct {
	mu       sync.Mutex
	w        io.Writer
	pw       progress.Writer
	trackers map[string]*progress.Tracker
}

func liveProgress(stderr io.Writer, plan []operator.FleetItem, asJSON bool) *fleetProgress {
	fp := &fleetProgress{w: stderr}
	if asJSON || !detectOutput(stderr).Terminal {
		return fp
	}
	totals := map[string]int64{}
	for _, it := range plan {
		if it.Outcome == operator.OutcomeWillRotate {
			totals[it.Provider]++
		}
	}
	if len(totals) == 0 {
		return fp
	}
	pw := progress.NewWriter()
	pw.SetOutputWriter(stderr)
	pw.SetAutoStop(false)
	pw.SetTrackerLength(30)
	pw.SetMessageLength(24)
	pw.Style().Visibility.TrackerOverall = len(totals) > 1
	pw.Style().Visibility.Value = true
	fp.pw, fp.trackers = pw, map[string]*progress.Tracker{}
	names := make([]string, 0, len(totals))
	for p := range totals {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		t := &progress.Tracker{Message: p, Total: totals[p], Units: progress.UnitsDefault}
		fp.trackers[p] = t
		pw.AppendTracker(t)
	}
	go pw.Render()
	return fp
}

func (fp *fleetProgress) row(it operator.FleetItem, started bool) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.pw == nil {
		switch {
		case started:
		case it.Reason != "":
			fmt.Fprintf(fp.w, "%s: %s: %s\n", it.Secret, it.Outcome, it.Reason)
		default:
			fmt.Fprintf(fp.w, "%s: %s (new key %s)\n", it.Secret, it.Outcome, dashIfEmpty(it.NewKeyID))
		}
		return
	}
	if started {
		return
	}
	if t := fp.trackers[it.Provider]; t != nil {
		t.Increment(1)
	}
	if it.Outcome != operator.OutcomeRotated {
		fp.pw.Log("%s: %s", it.Secret, it.Outcome)
	}
}

func (fp *fleetProgress) stop() {
	if fp.pw == nil {
		return
	}
	for _, t := range fp.trackers {
		t.MarkAsDone()
	}
	fp.pw.Stop()
	for fp.pw.IsRenderInProgress() {
		time.Sleep(10 * time.Millisecond) // the renderer's last frame
	}
}
