// Diagnostics (the guide's "Use diagnostics when a client cannot connect"): Healthcheck
// connects if needed and reports the link, with the last error when it is not ok.
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/doctor
package main

import (
	"context"
	"fmt"

	"github.com/thalovant/thalovant-go-sdk/examples/internal/reader"
)

func main() {
	ctx := context.Background()
	client := reader.Client()
	defer client.Close(ctx)

	fmt.Println(client.Healthcheck())
}
