package enroll

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/fleetca/fleetca/api"
	"github.com/fleetca/fleetca/store"
)

// FuzzManufacturerDeviceID reads a device ID out of an arbitrary
// certificate, as a device presents it over TLS: no panic, and an ID
// accepted is a valid device ID that matches the pattern.
func FuzzManufacturerDeviceID(f *testing.F) {
	ca := newMfrCA(f, "Fuzz")
	for _, s := range []pkix.Name{{CommonName: "acme-1"}, {SerialNumber: "SN1"}, {CommonName: "a b"}, {}} {
		f.Add(ca.issue(f, s, testStart, testStart.Add(time.Hour)).Raw, "acme-*")
	}
	f.Fuzz(func(t *testing.T, der []byte, pattern string) {
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		if checkPattern(pattern) != nil {
			pattern = ""
		}
		for _, from := range []string{DeviceIDFromCN, DeviceIDFromSerialNumber} {
			id, err := manufacturerDeviceID(store.Manufacturer{Name: "acme", DeviceIDFrom: from, DevicePattern: pattern}, leaf)
			if err != nil {
				if kindOf(err) == 0 {
					t.Fatalf("manufacturerDeviceID error %v is not a fault", err)
				}
				continue
			}
			if _, perr := api.ParseDeviceID(string(id)); perr != nil {
				t.Fatalf("manufacturerDeviceID accepted %q, not a device ID: %v", id, perr)
			}
			if pattern != "" && !matchPattern(pattern, id) {
				t.Fatalf("manufacturerDeviceID accepted %q, outside pattern %q", id, pattern)
			}
		}
	})
}
