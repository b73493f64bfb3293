package providers

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Kind classifies an error by what the caller may do about it. The values are
// metric labels: append only, never renumber.
type Kind uint8

const (
	// Other is an error nobody classified. Treat it as permanent.
	Other Kind = iota
	// Transient errors (timeouts, 429, 5xx, lost connections) may succeed on retry.
	Transient
	// Invalid means the request or the secret is wrong; retrying will not help.
	Invalid
	// Permission means the vendor refused the credential (401, 403).
	Permission
	// NotFound means the key or owner does not exist.
	NotFound
	// Conflict means the vendor refused because of its state, such as a key limit.
	Conflict
)

var kindNames = [...]string{"other", "transient", "invalid", "permission", "not_found", "conflict"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is the one error type providers return. Op names the vendor operation
// ("iam.CreateAccessKey"); RequestID is the vendor's request id when it sent
// one. Err must never hold key material or a response body.
type Error struct {
	Op        string
	Kind      Kind
	Status    int // HTTP status, 0 when there was no response
	RequestID string
	Err       error
}

// E returns an *Error for op with the given kind.
func E(op string, kind Kind, err error) *Error {
	return &Error{Op: op, Kind: kind, Err: err}
}

func (e *Error) Error() string {
	msg := e.Op + ": " + e.Kind.String()
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.RequestID != "" {
		msg += " request_id=" + e.RequestID
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// RetryableError lets the AWS SDK's retryer read the Kind.
func (e *Error) RetryableError() bool { return e.Kind == Transient }

// KindOf returns the Kind of the first *Error in err's chain. Context
// cancellations, deadlines and network errors count as Transient; anything
// else is Other.
func KindOf(err error) Kind {
	if err == nil {
		return Other
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Transient
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return Transient
	}
	return Other
}

// IsKind reports whether err is of kind k.
func IsKind(err error, k Kind) bool { return err != nil && KindOf(err) == k }
