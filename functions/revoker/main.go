// Command revoker revokes old keys after their grace period: the SQS handler
// of package revocation over every provider, with partial batch responses.
// Configuration: package internal/function/lambdafn.
package main

import (
	"github.com/keyrotor/keyrotor/internal/function/all"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func main() { lambdafn.StartRevoker(all.Builders()) }
