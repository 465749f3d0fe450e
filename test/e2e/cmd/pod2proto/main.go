// Command pod2proto writes a Pod, a PodList or a Status given as JSON in the API server's
// protobuf encoding ("k8s\x00" + runtime.Unknown), with k8s.io/api's own generated code: the
// golden files that capwatch's protobuf decoder is tested against (test/unit/testdata).
//
//	go run ./cmd/pod2proto -in pods.json -out pods.pb
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
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "pod2proto:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	if in == "" || out == "" {
		return fmt.Errorf("-in and -out are required")
	}
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var meta metav1.TypeMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		return fmt.Errorf("%s: %w", in, err)
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
		return fmt.Errorf("%s: kind %q is not Pod, PodList or Status", in, meta.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if list, ok := obj.(*corev1.PodList); ok {
		list.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}
	}
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &buf); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
