// Command apigateway is the Secrets Manager rotation function for API
// Gateway API keys (the new key joins the old key's usage plans): the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the apigateway provider. Configuration: package
// internal/function/lambdafn.
package main

import (
	"github.com/keyrotor/keyrotor/internal/function/build/apigateway"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func main() { lambdafn.StartRotation(apigateway.Build) }
