package iam_test

import (
	"context"
	"log"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/iam"
)

// The rotation function builds the provider once from its own AWS
// configuration (AWS_ENDPOINT_URL is honoured) and hands it to the engine.
func ExampleNew() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p := iam.New(cfg, nil)

	owner, err := providers.ParseSecret(`{"provider":"iam","user_name":"payments-bot"}`)
	if err != nil {
		log.Fatal(err)
	}
	cred, err := p.Create(ctx, providers.CreateRequest{SecretName: "prod/payments", Owner: owner})
	if err != nil {
		log.Fatal(err) // a Conflict error when the user already has 2 keys
	}
	log.Printf("created %v", cred) // a Credential never prints its key
}
