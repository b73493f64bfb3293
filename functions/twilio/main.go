// Command twilio is the Secrets Manager rotation function for Twilio API keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the twilio provider. Configuration: package internal/function.
package main

import "github.com/keyrotor/keyrotor/internal/function"

func main() { function.StartRotation(function.Twilio) }
