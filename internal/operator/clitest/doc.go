// Package clitest tests the compiled keyrotor CLI's operator commands
// (status, rotate, rollback, unstick, import, inventory) end to end: the
// binary runs against the local stack (moto_server behind the launcher, the
// compiled functions under the Lambda runtime emulator, the reference
// gateway, the revoker's poller), all on 127.0.0.1, started once for the
// package and stopped when its tests end. It holds tests only.
package clitest
