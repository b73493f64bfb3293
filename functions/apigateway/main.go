// Command apigateway is the Secrets Manager rotation function for API
// Gateway API keys (the new key joins the old key's usage plans): the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the apigateway provider. Configuration: package
// internal/function.
package main

import "github.com/keyrotor/keyrotor/internal/function"

func main() { function.StartRotation(function.APIGateway) }
