// Command auditor is the scheduled auditor: it lists the managed secrets and
// publishes their key age and rotation health to CloudWatch (package audit).
// Configuration: package internal/function.
package main

import "github.com/keyrotor/keyrotor/internal/function"

func main() { function.StartAuditor() }
