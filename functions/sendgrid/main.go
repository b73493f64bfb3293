// Command sendgrid is the Secrets Manager rotation function for SendGrid API keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the sendgrid provider. Configuration: package internal/function.
package main

import "github.com/keyrotor/keyrotor/internal/function"

func main() { function.StartRotation(function.SendGrid) }
