// Command sendgrid is the Secrets Manager rotation function for SendGrid API keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the sendgrid provider. Configuration: package internal/function/lambdafn.
package main

import (
	"github.com/keyrotor/keyrotor/internal/function/build/sendgrid"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func main() { lambdafn.StartRotation(sendgrid.Build) }
