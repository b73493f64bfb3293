// Package local runs keyrotor on one machine, with nothing mocked in-process:
// moto_server (started through moto_launcher.py, which forwards moto's
// Lambda invokes to the functions) as Secrets Manager, SQS, IAM and Lambda;
// the real function binaries built for this machine, each under its own
// Lambda Runtime Interface Emulator; the reference gateway; an SQS
// event-source poller that feeds the revoker as Lambda does; a schedule that
// invokes the auditor when it exists; and, when the apigateway function runs,
// a stand-in for API Gateway's data plane, which moto lacks
// (APIGatewayDataPlane: it refuses a new API key for
// Options.APIGatewayDataPlaneLag, and is that function's
// APIGATEWAY_CANARY_URL). Every server listens on 127.0.0.1
// and a free port. Each function reaches moto through its own counting
// proxy, so that its AWS calls can be counted.
//
// The stack runs in one region unless Options.Regions names more: then each
// region gets its own functions, queues, pollers and admin secret, around the
// one shared gateway (RegionStack), and invokes are routed by the region of
// the invoked function, so the same secret name can rotate in two regions
// against one vendor, as two deployments would.
//
// Start returns a running Stack; Stop stops every process it started. With
// the stack's Env, `aws secretsmanager rotate-secret --secret-id
// demo/gateway` rotates through the real gateway function, as on AWS, and
// `aws lambda invoke` reaches the functions. RunDemo tells the story of one
// rotation; RunBench measures the functions. `keyrotor local`, `keyrotor
// demo`, `keyrotor bench` and the end-to-end tests (internal/e2e) are built
// on them.
package local
