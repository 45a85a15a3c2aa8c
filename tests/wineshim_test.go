package tests

import (
	"bytes"
	"encoding/binary"
)

// bcryptPrimitivesShim is a PE32+ DLL named bcryptprimitives.dll whose only
// export, ProcessPrng, is forwarded to advapi32.SystemFunction036
// (RtlGenRandom): same arguments (buffer, length), non-zero on success.
//
// Why: Go ≥ 1.22 loads ProcessPrng from bcryptprimitives.dll at start-up,
// which every Windows since Windows 10 has, but Debian 12's Wine 8.0 does
// not ("fatal error: bcryptprimitives.dll not found"). The Wine test puts
// this DLL into its own Wine prefix's system32; real Windows never needs
// it. The DLL holds no code: one section with the export directory and its
// forwarder string (PE format: "Export Directory Table", "Forwarder RVA",
// https://learn.microsoft.com/windows/win32/debug/pe-format).
func bcryptPrimitivesShim() []byte {
	const (
		fileAlign = 0x200
		sectRVA   = 0x1000
		imageSize = 0x2000
	)
	le := binary.LittleEndian
	// The .rdata section: export directory, then its tables and strings.
	var sec bytes.Buffer
	dllName := "bcryptprimitives.dll\x00"
	fn := "ProcessPrng\x00"
	fwd := "advapi32.SystemFunction036\x00"
	const dirSize = 40
	eat := sectRVA + dirSize
	names := eat + 4
	ords := names + 4
	nameRVA := ords + 2
	fnRVA := nameRVA + len(dllName)
	fwdRVA := fnRVA + len(fn)
	end := fwdRVA + len(fwd)
	u32 := func(v int) { _ = binary.Write(&sec, le, uint32(v)) }
	u32(0)                                      // Characteristics
	u32(0)                                      // TimeDateStamp
	_ = binary.Write(&sec, le, [2]uint16{0, 0}) // Major/MinorVersion
	u32(nameRVA)                                // Name
	u32(1)                                      // OrdinalBase
	u32(1)                                      // AddressTableEntries
	u32(1)                                      // NumberOfNamePointers
	u32(eat)                                    // ExportAddressTableRVA
	u32(names)                                  // NamePointerRVA
	u32(ords)                                   // OrdinalTableRVA
	u32(fwdRVA)                                 // EAT[0]: inside the export directory, so a forwarder
	u32(fnRVA)                                  // names[0]
	_ = binary.Write(&sec, le, uint16(0))       // ordinals[0]
	sec.WriteString(dllName + fn + fwd)
	raw := make([]byte, fileAlign)
	copy(raw, sec.Bytes())

	var h bytes.Buffer
	dos := make([]byte, 0x40)
	copy(dos, "MZ")
	le.PutUint32(dos[0x3c:], 0x40)
	h.Write(dos)
	h.WriteString("PE\x00\x00")
	w := func(v any) { _ = binary.Write(&h, le, v) }
	// COFF header: AMD64, one section, a DLL image.
	w(uint16(0x8664))
	w(uint16(1))
	w(uint32(0))
	w(uint32(0))
	w(uint32(0))
	w(uint16(240))
	w(uint16(0x2000 | 0x0020 | 0x0002)) // DLL | LARGE_ADDRESS_AWARE | EXECUTABLE_IMAGE
	// Optional header, PE32+.
	w(uint16(0x20b))
	w([2]uint8{14, 0})             // linker version
	w(uint32(0))                   // SizeOfCode
	w(uint32(fileAlign))           // SizeOfInitializedData
	w(uint32(0))                   // SizeOfUninitializedData
	w(uint32(0))                   // AddressOfEntryPoint: none
	w(uint32(sectRVA))             // BaseOfCode
	w(uint64(0x180000000))         // ImageBase
	w(uint32(0x1000))              // SectionAlignment
	w(uint32(fileAlign))           // FileAlignment
	w([6]uint16{6, 0, 0, 0, 6, 0}) // OS, image, subsystem versions
	w(uint32(0))                   // Win32VersionValue
	w(uint32(imageSize))           // SizeOfImage
	w(uint32(fileAlign))           // SizeOfHeaders
	w(uint32(0))                   // CheckSum
	w(uint16(3))                   // Subsystem: console
	w(uint16(0x0100 | 0x0040))     // DllCharacteristics: NX_COMPAT | DYNAMIC_BASE
	w([4]uint64{0x100000, 0x1000, 0x100000, 0x1000})
	w(uint32(0))  // LoaderFlags
	w(uint32(16)) // NumberOfRvaAndSizes
	for i := 0; i < 16; i++ {
		if i == 0 { // the export directory
			w([2]uint32{sectRVA, uint32(end - sectRVA)})
			continue
		}
		w([2]uint32{0, 0})
	}
	// Section header.
	h.WriteString(".rdata\x00\x00")
	w(uint32(end - sectRVA)) // VirtualSize
	w(uint32(sectRVA))       // VirtualAddress
	w(uint32(fileAlign))     // SizeOfRawData
	w(uint32(fileAlign))     // PointerToRawData
	w([3]uint32{0, 0, 0})    // relocations, line numbers, their counts
	w(uint32(0x40000040))    // INITIALIZED_DATA | MEM_READ
	head := make([]byte, fileAlign)
	copy(head, h.Bytes())
	return append(head, raw...)
}
