// Command iam is the Secrets Manager rotation function for iam keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the iam provider. Configuration: package internal/function/lambdafn.
package main

import (
	"github.com/keyrotor/keyrotor/internal/function/build/iam"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func main() { lambdafn.StartRotation(iam.Build) }
