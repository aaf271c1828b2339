// Context (the guide's "Context carries stable user, source, locale, and trace metadata").
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/context
package main

import (
	"context"
	"fmt"
	"log"

	thalovant "github.com/thalovant/thalovant-go-sdk"
	"github.com/thalovant/thalovant-go-sdk/examples/internal/reader"
)

func main() {
	ctx := context.Background()
	client := reader.Client()
	defer client.Close(ctx)

	requestContext := thalovant.BuildClientContext(nil, thalovant.ClientContextOptions{
		UserID:   "user-42",
		UserName: "Ada",
		Source:   "checkout-kiosk",
		Platform: "kiosk",
		Locale:   "en-US",
		Channel:  "chat",
		Metadata: map[string]any{"trace_id": "req-2026-06-10-001"},
	})

	reply, err := client.Ask(ctx, "Show the next instruction.", thalovant.RequestOptions{
		Context: requestContext,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Text)
}
