package operator

import (
	"context"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor"
)

// TestStatusReportsOtherKeys: a key at the vendor that keyrotor cannot prove
// is the secret's (named under the first scheme, shared with secrets of the
// same name elsewhere), and a key that only an unlabelled version holds (a
// rotation abandoned, or superseded within the grace period), are shown by
// status as problems that say what becomes of them — never silently.
func TestStatusReportsOtherKeys(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/others"
	e.managedSecret(secret)
	legacy := e.p.Add(keyrotor.LegacyKeyNamePrefix(secret) + "someone")
	for _, v := range []string{"v2", "v3", "v4"} {
		e.rotate(secret, v)
	}
	v2, _, err := e.op.read(context.Background(), "test", secret, "", "v2")
	if err != nil {
		t.Fatal(err)
	}
	sts, err := e.op.Status(context.Background(), []string{secret}, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(sts[0].Problems, "\n")
	if !strings.Contains(problems, legacy.ID) || !strings.Contains(problems, "not provably this secret's") {
		t.Errorf("status does not report the unprovable key %s: %s", legacy.ID, problems)
	}
	if !strings.Contains(problems, v2.KeyID) || !strings.Contains(problems, "unlabelled version v2") {
		t.Errorf("status does not report the key %s only the unlabelled version v2 holds: %s", v2.KeyID, problems)
	}
}
