// Raw events and structured inputs (the guide's emit, utterance, action and code recipes).
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/emit_and_inputs
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

func main() {
	ctx := context.Background()
	path, protocol := os.Getenv("THALOVANT_IDENTITY"), os.Getenv("THALOVANT_PROTOCOL")
	if path == "" {
		path = "_identity.json"
	}
	if protocol == "" {
		protocol = "wss"
	}
	identity, err := thalovant.IdentityFromFile(path)
	if err != nil {
		log.Fatal(err)
	}
	client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{Protocol: thalovant.HubProtocol(protocol)})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	err = client.Emit(ctx, "thalovant.client.status", map[string]any{
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
