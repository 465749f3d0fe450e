// Command pod2proto writes a Pod, a PodList or a Status given as JSON in the API server's
// protobuf encoding ("k8s\x00" + runtime.Unknown), with k8s.io/api's own generated code: the
// golden files that capwatch's protobuf decoder is tested against (test/unit/testdata). With
// -watch, the input is a JSON array of watch events ({"type": ..., "object": a Pod or a
// Status}) and the output the watch stream the API server sends for them: each event a
// metav1.WatchEvent framed by its length, its object encoded as above.
//
//	go run ./cmd/pod2proto -in pods.json -out pods.pb
//	go run ./cmd/pod2proto -watch -in events.json -out events.pb
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

func main() {
	in := flag.String("in", "", "JSON file: a Pod, a PodList (or kubectl's List of Pods) or a Status, by its kind")
	out := flag.String("out", "", "protobuf file to write")
	watch := flag.Bool("watch", false, "the input is a JSON array of watch events; write a protobuf watch stream")
	flag.Parse()
	run := encodeObject
	if *watch {
		run = encodeWatch
	}
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "pod2proto:", err)
		os.Exit(1)
	}
}

func encodeObject(in, out string) error {
	if in == "" || out == "" {
		return fmt.Errorf("-in and -out are required")
	}
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	b, err := encode(in, data)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}

func encodeWatch(in, out string) error {
	if in == "" || out == "" {
		return fmt.Errorf("-in and -out are required")
	}
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var events []struct {
		Type   string          `json:"type"`
		Object json.RawMessage `json:"object"`
	}
	if err := json.Unmarshal(data, &events); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	var buf bytes.Buffer
	frames := protobuf.LengthDelimitedFramer.NewFrameWriter(&buf)
	raw := protobuf.NewRawSerializer(scheme.Scheme, scheme.Scheme)
	for i, e := range events {
		object, err := encode(fmt.Sprintf("%s: event %d", in, i), e.Object)
		if err != nil {
			return err
		}
		var event bytes.Buffer
		if err := raw.Encode(&metav1.WatchEvent{Type: e.Type, Object: runtime.RawExtension{Raw: object}}, &event); err != nil {
			return err
		}
		if _, err := frames.Write(event.Bytes()); err != nil {
			return err
		}
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// encode returns the object in `data` (JSON) as the API server's protobuf.
func encode(in string, data []byte) ([]byte, error) {
	var meta metav1.TypeMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	var obj runtime.Object
	switch meta.Kind {
	case "Pod":
		obj = &corev1.Pod{}
	case "PodList", "List": // kubectl get pods -o json writes a List of Pods
		obj = &corev1.PodList{}
	case "Status":
		obj = &metav1.Status{}
	default:
		return nil, fmt.Errorf("%s: kind %q is not Pod, PodList or Status", in, meta.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	if list, ok := obj.(*corev1.PodList); ok {
		list.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}
	}
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
