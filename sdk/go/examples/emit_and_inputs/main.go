// Raw events and structured inputs (the guide's emit, utterance, action and code recipes).
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/emit_and_inputs
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

	err := client.Emit(ctx, "thalovant.client.status", map[string]any{
		"state": "ready",
	}, map[string]any{
		"source": "checkout-kiosk",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("emitted thalovant.client.status")

	err = client.SendUtterance(ctx, "What is the status?", thalovant.RequestOptions{
		Lang:      "en-us",
		SessionID: "status-session",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent utterance")

	err = client.SendAction(ctx, "/approve invoice-42", thalovant.ActionOptions{
		Title:     "Approve invoice",
		SessionID: "approval-session",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent action")

	err = client.SendCode(ctx, "INV-2026-001", thalovant.CodeOptions{
		Kind:      "invoice",
		SessionID: "scan-session",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent code")
}
