package operator

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// RotateOptions tune Rotate.
type RotateOptions struct {
	// Wait follows the rotation until the new key is AWSCURRENT.
	Wait bool
	// Emergency rotates with grace 0 (the keyrotor:emergency-token tag
	// names this rotation's ClientRequestToken), waits for it, then waits
	// until the vendor confirms the old key is revoked.
	Emergency bool
	// Timeout bounds the wait (default 15 minutes).
	Timeout time.Duration
	// ProgressEvery is how often a wait repeats its state when nothing
	// changes (default 15s): a wait prints one line per change of what it
	// waits for, each with the time elapsed, and one line every
	// ProgressEvery in between, so that a silent terminal means a hung
	// command, never a slow vendor.
	ProgressEvery time.Duration
}

// RotateResult is what Rotate did.
type RotateResult struct {
	Secret    string `json:"secret"`
	VersionID string `json:"version_id"` // the ClientRequestToken
	Emergency bool   `json:"emergency"`
	// Finished is true once the new version is AWSCURRENT (known only
	// with Wait or Emergency).
	Finished bool   `json:"finished"`
	NewKeyID string `json:"new_key_id,omitempty"`
	OldKeyID string `json:"old_key_id,omitempty"`
	// OldKeyRevoked is true once the vendor no longer knows the old key
	// (Emergency only).
	OldKeyRevoked bool `json:"old_key_revoked"`
	// Superseded are the keys an emergency rotation waited for: every key
	// of the secret's other versions (the old current, AWSPREVIOUS, the
	// unlabelled ones), each as the vendor last answered.
	Superseded []SupersededKey `json:"superseded,omitempty"`
}

// SupersededKey is a key of a version that is not AWSCURRENT.
type SupersededKey struct {
	KeyID   string   `json:"key_id"`
	Version string   `json:"version_id"`
	Labels  []string `json:"labels,omitempty"`
	// State is live, revoked, or "" when the vendor could not say (Error).
	State KeyState `json:"state"`
	Error string   `json:"error,omitempty"`
	cred  providers.Credential
}

// StepError is a rotation that failed or did not finish: the step it
// stopped at and why.
type StepError struct {
	Secret string
	Step   string // createSecret..finishSecret, or "" when unknown
	Reason string
	Err    error
}

func (e *StepError) Error() string {
	step := e.Step
	if step == "" {
		step = "an unknown step"
	}
	return fmt.Sprintf("rotation of %s failed at %s: %s", e.Secret, step, e.Reason)
}

func (e *StepError) Unwrap() error { return e.Err }

// WaitStoppedError is a wait stopped from outside (SIGINT or SIGTERM cancel
// the command's context): what it was waiting for and what it leaves
// behind, since the rotation goes on in Secrets Manager without keyrotor.
// It does not wrap the context's error, so that the CLI prints it rather
// than treating it as a silent cancellation.
type WaitStoppedError struct {
	Op, Secret string
	Elapsed    time.Duration
	// Waiting is what the wait was waiting for; LeftBehind the state it
	// leaves and what to do about it.
	Waiting, LeftBehind string
}

func (e *WaitStoppedError) Error() string {
	return fmt.Sprintf("%s %s: stopped after %s while %s; %s", e.Op, e.Secret, fmtElapsed(e.Elapsed), e.Waiting, e.LeftBehind)
}

// waitLine reports a long wait: a line whenever what it waits for changes
// and, while it does not, one every `every`, each with the time elapsed.
type waitLine struct {
	o        *Operator
	secret   string
	start    time.Time
	deadline time.Time
	every    time.Duration
	last     string // what it waits for, as last reported
	lastAt   time.Time
}

func (o *Operator) newWaitLine(secret string, opts RotateOptions) *waitLine {
	start := o.now()
	w := &waitLine{o: o, secret: secret, start: start, deadline: start.Add(o.timeout(opts.Timeout)), every: opts.ProgressEvery}
	if w.every <= 0 {
		w.every = 15 * time.Second
	}
	return w
}

// waiting reports that the wait now waits for what ("waiting for ...").
func (w *waitLine) waiting(what string) {
	now := w.o.now()
	switch {
	case what != w.last:
		w.o.progress("%s: [%s] %s", w.secret, fmtElapsed(now.Sub(w.start)), what)
	case now.Sub(w.lastAt) >= w.every:
		w.o.progress("%s: [%s] still %s (gives up in %s)", w.secret, fmtElapsed(now.Sub(w.start)), what, fmtElapsed(w.deadline.Sub(now)))
	default:
		return
	}
	w.last, w.lastAt = what, now
}

func (w *waitLine) elapsed() time.Duration { return w.o.now().Sub(w.start) }

// timedOut reports whether the wait's time is up.
func (w *waitLine) timedOut() bool { return !w.o.now().Before(w.deadline) }

// fmtElapsed formats a wait's duration to the second: 1m15s.
func fmtElapsed(d time.Duration) string { return max(d, 0).Round(time.Second).String() }

var stepName = regexp.MustCompile(`\b(createSecret|setSecret|testSecret|finishSecret)\b`)

func (o *Operator) timeout(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return 15 * time.Minute
}

// Rotate starts a rotation through Secrets Manager's RotateSecret, with the
// rotation function and schedule the secret already has.
func (o *Operator) Rotate(ctx context.Context, id string, opts RotateOptions) (RotateResult, error) {
	op := "rotate"
	if opts.Emergency {
		op = "emergency rotate"
	}
	s, err := o.describe(ctx, op, id)
	if err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{Secret: s.name(), Emergency: opts.Emergency}
	cur, liftHold, err := o.rotatable(ctx, op, s, opts.Emergency)
	res.OldKeyID = cur.KeyID
	if err != nil {
		return res, err
	}
	if liftHold != "" {
		// The hold keeps the key a rollback restored from the revoker;
		// an emergency supersedes that key, which must die now.
		o.progress("%s: lifting the rollback hold (%s=%s): an emergency rotation revokes every superseded key", res.Secret, keyrotor.TagRollbackUntil, liftHold)
		if err := o.setHold(ctx, id, o.now().UTC().Truncate(time.Second)); err != nil {
			return res, fmt.Errorf("%s %s: %w; nothing was rotated", op, id, err)
		}
	}
	token := o.token()
	res.VersionID = token
	if opts.Emergency {
		if _, err := o.SM.TagResource(ctx, &secretsmanager.TagResourceInput{
			SecretId: aws.String(id),
			Tags:     []smtypes.Tag{{Key: aws.String(rotation.TagEmergencyToken), Value: aws.String(token)}},
		}); err != nil {
			return res, fmt.Errorf("%s %s: secretsmanager.TagResource (%s): %w", op, id, rotation.TagEmergencyToken, err)
		}
	}
	o.progress("%s: RotateSecret with version %s", res.Secret, token)
	if _, err := o.SM.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId:           aws.String(id),
		ClientRequestToken: aws.String(token),
	}); err != nil {
		step := ""
		if m := stepName.FindString(err.Error()); m != "" {
			step = m
		}
		return res, &StepError{Secret: res.Secret, Step: step, Reason: "secretsmanager.RotateSecret: " + err.Error(), Err: err}
	}
	if !opts.Wait && !opts.Emergency {
		return res, nil
	}
	wl := o.newWaitLine(res.Secret, opts)
	// What a rotation that is not finished leaves behind, said on a
	// timeout and when the wait is stopped.
	q := inventory.ShellQuote(id)
	leftBehind := fmt.Sprintf("the rotation (version %s) goes on in Secrets Manager without keyrotor; the old key %s stays AWSCURRENT until it finishes; follow it with `keyrotor status %s`", token, cur.KeyID, q)
	if opts.Emergency {
		leftBehind = fmt.Sprintf("the leaked key %s is still AWSCURRENT and live at %s: the emergency rotation (version %s) goes on in Secrets Manager without keyrotor, and the revoker revokes the key once it finishes; check with `keyrotor status %s`. If it does not finish, read why in the rotation function's logs, then `keyrotor unstick %s --force && keyrotor rotate %s --emergency` (revoking the key at %s by hand instead stops every application still using it)",
			cur.KeyID, cur.Provider, token, q, q, q, cur.Provider)
	}
	if err := o.follow(ctx, op, s, token, wl, leftBehind); err != nil {
		return res, o.stopped(ctx, op, id, wl, leftBehind, err)
	}
	res.Finished = true
	now, err := o.readCurrent(ctx, op, s)
	if err != nil {
		return res, o.stopped(ctx, op, id, wl, leftBehind, err)
	}
	res.NewKeyID = now.KeyID
	o.progress("%s: [%s] finishSecret done: key %s is AWSCURRENT", res.Secret, fmtElapsed(wl.elapsed()), now.KeyID)
	if !opts.Emergency {
		return res, nil
	}
	err = o.awaitSuperseded(ctx, op, s, now, wl, &res)
	if err != nil && ctx.Err() != nil {
		var live []SupersededKey
		for _, k := range res.Superseded {
			if k.State != KeyRevoked {
				live = append(live, k)
			}
		}
		left := fmt.Sprintf("the new key %s is AWSCURRENT; the revoker revokes the superseded keys when their messages fire", now.KeyID)
		if len(live) > 0 {
			left += "; until then these are still live, kill each now:" + killList(id, live)
		}
		return res, o.stopped(ctx, op, id, wl, left, err)
	}
	return res, err
}

// rotatable checks, without changing anything, that the secret can be
// rotated now (plainly, or in an emergency): no rotation in progress, a
// vendor with a key API, a rotation function, no rollback hold (plain), the
// vendor's key limit (plain). A check that fails is a *RefusedError saying
// why and what to do. cur is the AWSCURRENT key when it could be read;
// liftHold is the rollback hold an emergency must lift first ("" if none).
// Rotate and the fleet's plan share it, so the plan says exactly what
// Rotate would refuse.
func (o *Operator) rotatable(ctx context.Context, op string, s *secret, emergency bool) (cur providers.Credential, liftHold string, err error) {
	id := s.id
	if s.pending != "" {
		return cur, "", refused(op, id, "a rotation is already in progress (AWSPENDING is on version %s); wait for it, or clear it with `keyrotor unstick %s`", s.pending, id)
	}
	// What to do at a vendor without a key API comes first: such a secret
	// never has a rotation function, and in a leak the advice to configure
	// one would cost time.
	cur, err = o.readCurrent(ctx, op, s)
	if err != nil {
		return cur, "", err
	}
	switch {
	case emergency && !hasKeyAPI(cur.Provider):
		return cur, "", refused(op, id, "%s keys cannot be rotated by API. At %s now: roll the key in the dashboard with the old key expiring now; then store the new key with `keyrotor import %s --old-key-expires 0s` (it reads the key from standard input)", cur.Provider, cur.Provider, id)
	case !hasKeyAPI(cur.Provider):
		return cur, "", refused(op, id, "%s keys cannot be rotated by API: roll the key in the %s dashboard, then store the new key with `keyrotor import %s` (it reads the key from standard input)", cur.Provider, cur.Provider, id)
	case aws.ToString(s.desc.RotationLambdaARN) == "":
		return cur, "", refused(op, id, "the secret has no rotation function; configure it with `keyrotor inventory apply`")
	}
	if v, held := s.tags[keyrotor.TagRollbackUntil]; held {
		until, ok := keyrotor.RollbackHold(v)
		switch {
		case emergency && (!ok || o.now().Before(until)):
			liftHold = v
		case emergency:
		case !ok:
			return cur, "", refused(op, id, "the tag %s=%q is not an RFC 3339 time, so the rotation function refuses plain rotations; fix or remove the tag (or use --emergency for a leaked key)", keyrotor.TagRollbackUntil, v)
		case o.now().Before(until):
			return cur, "", refused(op, id, "plain rotations are held until %s after a rollback (%s): find and fix why the new key did not work, then rotate; --emergency is not held", until.UTC().Format(time.RFC3339), keyrotor.TagRollbackUntil)
		}
	}
	if !emergency {
		if err := o.refuseAtKeyLimit(ctx, op, s, cur); err != nil {
			return cur, "", err
		}
	}
	return cur, liftHold, nil
}

// stopped turns an error of a wait whose context is done (SIGINT, SIGTERM)
// into a WaitStoppedError saying what the wait leaves behind.
func (o *Operator) stopped(ctx context.Context, op, id string, wl *waitLine, leftBehind string, err error) error {
	if ctx.Err() == nil {
		return err
	}
	waiting := wl.last
	if waiting == "" {
		waiting = "waiting for the rotation"
	}
	return &WaitStoppedError{Op: op, Secret: id, Elapsed: wl.elapsed(), Waiting: waiting, LeftBehind: leftBehind}
}

// killList is one line per live key with the command that revokes it.
func killList(id string, keys []SupersededKey) string {
	var b strings.Builder
	for _, k := range keys {
		what := string(k.State)
		switch {
		case k.Error != "":
			what = "state unknown: " + k.Error
		case what == "":
			what = "not yet asked"
		}
		fmt.Fprintf(&b, "\n  key %s (version %s%s, %s): keyrotor revoke-key %s %s", k.KeyID, k.Version, labelList(k.Labels), what, inventory.ShellQuote(id), inventory.ShellQuote(k.KeyID))
	}
	return b.String()
}

// awaitSuperseded waits until the vendor no longer knows any key of the
// secret's versions other than AWSCURRENT (newCur): the leaked key, the key
// still in grace from the rotation before, keys of unlabelled versions. An
// emergency ends with the leaked key dead, or says exactly what is still
// alive and how to kill it: an error listing each live key with the
// command that revokes it.
func (o *Operator) awaitSuperseded(ctx context.Context, op string, s *secret, newCur providers.Credential, wl *waitLine, res *RotateResult) error {
	keys, err := o.superseded(ctx, op, s, newCur)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		res.OldKeyRevoked = true
		return nil
	}
	p, err := o.provider(newCur.Provider)
	if err != nil {
		return fmt.Errorf("%s %s: confirm the revocation of the superseded keys: %w", op, s.id, err)
	}
	res.Superseded = keys
	for {
		var live []string
		for i := range keys {
			k := &keys[i]
			if k.State == KeyRevoked {
				continue
			}
			state, err := keyState(ctx, p, k.cred, k.KeyID, k.cred)
			if ctx.Err() != nil {
				return ctx.Err() // stopped: keep what the vendor last said
			}
			k.State, k.Error = state, ""
			if err != nil {
				k.Error = err.Error()
			}
			if k.State != KeyRevoked {
				live = append(live, k.KeyID)
			}
		}
		res.Superseded = keys
		res.OldKeyRevoked = true
		for _, k := range keys {
			if k.KeyID == res.OldKeyID && k.State != KeyRevoked {
				res.OldKeyRevoked = false
			}
		}
		if len(live) == 0 {
			o.progress("%s: [%s] every superseded key is revoked at %s (%d)", res.Secret, fmtElapsed(wl.elapsed()), newCur.Provider, len(keys))
			return nil
		}
		wl.waiting(fmt.Sprintf("waiting for the revoker: %d of %d superseded keys still live at %s: %s", len(live), len(keys), newCur.Provider, strings.Join(live, ", ")))
		if wl.timedOut() {
			var liveKeys []SupersededKey
			for _, k := range keys {
				if k.State != KeyRevoked {
					liveKeys = append(liveKeys, k)
				}
			}
			return fmt.Errorf("%s %s: the new key %s is AWSCURRENT, but after %s %d superseded keys are still live at %s (check the revoker and its dead-letter queue); kill each now:%s",
				op, s.id, newCur.KeyID, fmtElapsed(wl.elapsed()), len(live), newCur.Provider, killList(s.id, liveKeys))
		}
		if err := o.sleep(ctx, o.pollInterval()); err != nil {
			return err
		}
	}
}

func labelList(labels []string) string {
	if len(labels) == 0 {
		return ", unlabelled"
	}
	return ", " + strings.Join(labels, ",")
}

// superseded returns the keys of every version of the secret other than
// the current one (deprecated versions included), once per key id, with
// the version's value as the key's owner. Versions of another provider are
// skipped (said in progress).
func (o *Operator) superseded(ctx context.Context, op string, s *secret, newCur providers.Credential) ([]SupersededKey, error) {
	versions, err := o.versions(ctx, op, s.id)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{newCur.KeyID: true}
	var out []SupersededKey
	for _, v := range versions {
		if has(v.VersionStages, rotation.Current) {
			continue
		}
		vid := aws.ToString(v.VersionId)
		cred, found, err := o.read(ctx, op, s.id, "", vid)
		if err != nil {
			return nil, err
		}
		if !found || cred.KeyID == "" || seen[cred.KeyID] {
			continue
		}
		seen[cred.KeyID] = true
		if cred.Provider != newCur.Provider {
			o.progress("%s: version %s holds a %q key (%s), not a %q one: not checked", s.name(), vid, cred.Provider, cred.KeyID, newCur.Provider)
			continue
		}
		out = append(out, SupersededKey{KeyID: cred.KeyID, Version: vid, Labels: v.VersionStages, cred: cred})
	}
	return out, nil
}

// follow polls the secret until version token is AWSCURRENT, reporting each
// step as it shows in the version's labels and value.
func (o *Operator) follow(ctx context.Context, op string, s *secret, token string, wl *waitLine, leftBehind string) error {
	for {
		desc, err := o.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(s.id)})
		if err != nil {
			return fmt.Errorf("%s %s: secretsmanager.DescribeSecret: %w", op, s.id, err)
		}
		stages, exists := desc.VersionIdsToStages[token]
		phase := ""
		switch {
		case has(stages, rotation.Current):
			return nil
		case !exists:
			phase = "Secrets Manager to start the rotation"
		case !has(stages, rotation.Pending):
			return &StepError{Secret: s.name(), Reason: fmt.Sprintf("version %s lost AWSPENDING without becoming AWSCURRENT (cleared by someone?)", token)}
		default:
			_, found, err := o.read(ctx, op, s.id, rotation.Pending, token)
			if err != nil {
				return err
			}
			phase = string(rotation.CreateSecret)
			if found {
				phase = "setSecret/testSecret/finishSecret"
			}
		}
		wl.waiting("waiting for " + phase)
		if wl.timedOut() {
			step := ""
			if phase == string(rotation.CreateSecret) {
				step = phase
			}
			return &StepError{Secret: s.name(), Step: step, Reason: fmt.Sprintf("not finished after %s, still at %s; the rotation function's logs say why (CloudWatch Logs of %s); %s", fmtElapsed(wl.elapsed()), phase, aws.ToString(desc.RotationLambdaARN), leftBehind)}
		}
		if err := o.sleep(ctx, o.pollInterval()); err != nil {
			return err
		}
	}
}
