// Command twilio is the Secrets Manager rotation function for Twilio API keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the twilio provider. Configuration: package internal/function/lambdafn.
package main

import (
	"github.com/keyrotor/keyrotor/internal/function/build/twilio"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func main() { lambdafn.StartRotation(twilio.Build) }
