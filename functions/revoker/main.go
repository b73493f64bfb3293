// Command revoker revokes old keys after their grace period: the SQS handler
// of package revocation over every provider, with partial batch responses.
// Configuration: package internal/function.
package main

import "github.com/keyrotor/keyrotor/internal/function"

func main() { function.StartRevoker() }
