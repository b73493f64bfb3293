package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/infra/local"
)

// TestForgedRevocationMessageRevokesNothing is issue 10's end-to-end test of
// the revoker's rule that a message is a request, not an authority: anyone
// who may send to the revocation queue (sqs:SendMessage, or one compromised
// rotation function) sends messages naming keys the secret never held, and
// the revoker on the local stack revokes none of them. It reads the old
// version the message names and revokes only a key that version holds under
// the message's provider.
//
// Two managed gateway secrets A and B, both rotated once (AWSPREVIOUS and
// AWSCURRENT each). The forged messages:
//
//   - secret A's ARN, a real old version of A (its AWSPREVIOUS), but B's
//     AWSCURRENT key id: in message version 2 and in version 1 (which the
//     revoker still honours for messages queued before an upgrade, so a
//     forger can use it too). The old version does not hold that key:
//     refused, and counted (RevocationsRefused).
//   - secret B's ARN, B's AWSCURRENT version and key: the key is current,
//     skipped.
//
// The admin key case (a message naming the key the gateway's admin secret
// holds) has no end-to-end form here: the local stack's admin secret holds
// only the gateway's admin token ({"key": "adm_..."}), which is not a key of
// the gateway's key table, has no key id and cannot be deleted with
// DELETE /v1/keys/{id}. revocation.TestForgedMessageNamingTheAdminKey
// covers it over the fakes.
//
// Once the revoker has handled every message, A's and B's AWSCURRENT keys
// must still answer 200 at the gateway, each message must have been
// acknowledged (not failed, so none goes to the dead-letter queue), and the
// refusals must show in the revoker's EMF.
func TestForgedRevocationMessageRevokesNothing(t *testing.T) {
	s := needStack(t)
	const grace = 2 * time.Second
	a, b := newSecret(t, grace), newSecret(t, grace)
	rotate(t, a)
	rotate(t, b)
	aPrev, aCur := key(t, a, "AWSPREVIOUS"), key(t, a, "AWSCURRENT")
	bCur := key(t, b, "AWSCURRENT")
	wantPing(t, aCur, 200, "A's AWSCURRENT key before the forged messages")
	wantPing(t, bCur, 200, "B's AWSCURRENT key before the forged messages")

	past := time.Now().Add(-time.Minute).UTC()
	forged := []forgedMessage{
		{
			what: "A's ARN and real AWSPREVIOUS version, B's AWSCURRENT key (version 2)", want: "refused",
			body: map[string]any{
				"version": 2, "secret_id": secretARN(t, a), "provider": "gateway", "key_id": bCur.KeyID,
				"old_version_id": aPrev.VersionID, "new_version_id": aCur.VersionID,
				"not_before": past, "attempt": 0, "reason": "rotation", "finished_at": past,
			},
		},
		{
			what: "A's ARN and real AWSPREVIOUS version, B's AWSCURRENT key (version 1)", want: "refused",
			body: map[string]any{
				"version": 1, "secret_id": secretARN(t, a), "provider": "gateway", "key_id": bCur.KeyID,
				"old_version_id": aPrev.VersionID, "new_version_id": aCur.VersionID,
				"not_before": past, "attempt": 0,
			},
		},
		{
			what: "B's ARN, B's AWSCURRENT version and key", want: "skipped",
			body: map[string]any{
				"version": 2, "secret_id": secretARN(t, b), "provider": "gateway", "key_id": bCur.KeyID,
				"old_version_id": bCur.VersionID, "new_version_id": bCur.VersionID,
				"not_before": past, "attempt": 0, "reason": "rotation", "finished_at": past,
			},
		},
	}
	refusedBefore := metricSum("RevocationsRefused")
	sq := sqs.NewFromConfig(s.Config())
	for i := range forged {
		body, err := json.Marshal(forged[i].body)
		if err != nil {
			t.Fatal(err)
		}
		forged[i].sent = string(body)
		out, err := sq.SendMessage(ctx(t), &sqs.SendMessageInput{QueueUrl: aws.String(s.QueueURL), MessageBody: aws.String(string(body))})
		if err != nil {
			t.Fatalf("send the forged message (%s): %v", forged[i].what, err)
		}
		forged[i].id = aws.ToString(out.MessageId)
	}

	// The revoker's poller hands each message to the revoker; wait until
	// the revoker has said what it did with each (handled, failed, or not
	// readable), then look at the keys.
	waitRevokerOutcomes(t, forged, false, 2*time.Minute)
	wantPing(t, bCur, 200, "B's AWSCURRENT key after the forged messages")
	wantPing(t, aCur, 200, "A's AWSCURRENT key after the forged messages")

	// Each message was acknowledged with the result its case calls for (a
	// failed one would come back after the visibility timeout and end in
	// the dead-letter queue).
	outcomes := waitRevokerOutcomes(t, forged, true, 2*time.Minute)
	for _, m := range forged {
		t.Logf("forged message (%s): the revoker's outcomes %v", m.what, outcomes[m.id])
		if got := outcomes[m.id]; !slices.Contains(got, "handled:"+m.want) {
			t.Errorf("forged message (%s): the revoker's outcomes %v, want handled:%s", m.what, got, m.want)
		}
	}
	wantRefused := 0
	for _, m := range forged {
		if m.want == "refused" {
			wantRefused++
		}
	}
	if got := metricSum("RevocationsRefused") - refusedBefore; got < float64(wantRefused) {
		t.Errorf("the revoker's EMF counts %g RevocationsRefused for the forged messages, want %d", got, wantRefused)
	}
	inDLQ := dlqBodies(t, s)
	for _, m := range forged {
		if slices.Contains(inDLQ, m.sent) {
			t.Errorf("forged message (%s) is in the dead-letter queue", m.what)
		}
	}
}

// forgedMessage is one message a test sends to the revocation queue itself.
type forgedMessage struct {
	what string         // the case, for failure messages
	body map[string]any // the JSON the forger writes
	want string         // the revoker's result: refused, skipped
	sent string         // the body as sent
	id   string         // its SQS message id
}

// secretARN returns the ARN of secret, as a forger would name it.
func secretARN(t *testing.T, secret string) string {
	t.Helper()
	d, err := stack.SecretsManager().DescribeSecret(ctx(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(d.ARN)
}

// revokerOutcomes reads the revoker's JSON log lines and returns, by SQS
// message id, what it did with each delivery of the message:
// "handled:<result>", "failed" or "unreadable".
func revokerOutcomes() map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(stack.Function("revoker").Logs(), "\n") {
		i := strings.IndexByte(line, '{')
		if i < 0 {
			continue
		}
		var l struct {
			Msg       string `json:"msg"`
			MessageID string `json:"message_id"`
			Result    string `json:"result"`
		}
		if json.Unmarshal([]byte(line[i:]), &l) != nil || l.MessageID == "" {
			continue
		}
		switch {
		case l.Msg == "revocation message handled":
			out[l.MessageID] = append(out[l.MessageID], "handled:"+l.Result)
		case strings.HasPrefix(l.Msg, "revocation failed"):
			out[l.MessageID] = append(out[l.MessageID], "failed")
		case strings.HasPrefix(l.Msg, "cannot read revocation message"):
			out[l.MessageID] = append(out[l.MessageID], "unreadable")
		}
	}
	return out
}

// waitRevokerOutcomes waits until the revoker has logged an outcome for
// every message (only a "handled" one if handled) and returns the outcomes.
// It polls the revoker's logs; timeout bounds the wait, and a message that
// failed as often as the queue's maxReceiveCount (it is in the dead-letter
// queue) ends it at once.
func waitRevokerOutcomes(t *testing.T, msgs []forgedMessage, handled bool, timeout time.Duration) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		outcomes := revokerOutcomes()
		var missing, dead []string
		for _, m := range msgs {
			got := outcomes[m.id]
			done := len(got) > 0
			if handled {
				done = slices.ContainsFunc(got, func(o string) bool { return strings.HasPrefix(o, "handled:") })
			}
			switch {
			case done:
			case len(got) >= stack.Options().MaxReceiveCount:
				dead = append(dead, m.what+" "+strings.Join(got, ","))
			default:
				missing = append(missing, m.what+" "+strings.Join(got, ","))
			}
		}
		switch {
		case len(dead) > 0:
			t.Fatalf("the revoker failed these forged messages as often as the queue's maxReceiveCount (%d), so they went to the dead-letter queue: %q", stack.Options().MaxReceiveCount, dead)
		case len(missing) == 0:
			return outcomes
		case time.Now().After(deadline):
			t.Fatalf("after %s the revoker has not handled these forged messages: %q (poller %+v)", timeout, missing, stack.Revocations.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dlqBodies peeks at the dead-letter queue's messages (up to 10) and
// returns their bodies. It hides them for a second only (the SDK leaves out
// a visibility timeout of 0, which would mean the queue's default); nothing
// else reads the dead-letter queue.
func dlqBodies(t *testing.T, s *local.Stack) []string {
	t.Helper()
	out, err := sqs.NewFromConfig(s.Config()).ReceiveMessage(ctx(t), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(s.DLQURL), MaxNumberOfMessages: 10, VisibilityTimeout: 1,
	})
	if err != nil {
		t.Fatalf("peek at the dead-letter queue: %v", err)
	}
	var bodies []string
	for _, m := range out.Messages {
		bodies = append(bodies, aws.ToString(m.Body))
	}
	return bodies
}
