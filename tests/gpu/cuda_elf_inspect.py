#!/usr/bin/env python3
"""Lists the GPU code (cubin ELF images) embedded in host objects or static libraries, and their symbols.

A stand-in for the two cuobjdump queries that check_cuda_archs.sh makes, for toolkits that ship nvcc
without cuobjdump (the pip-wheel CUDA installs do). Output follows cuobjdump's shape:
  --list-elf FILE              ELF file    1: activation.cu.o.sm_80.cubin
  --symbols --arch sm_80 FILE  STT_FUNC STB_LOCAL _ZN7longnet...activation_kernel...

How it reads the code: nvcc puts a fat binary in each host object's .nv_fatbin section (__nv_relfatbin
with relocatable device code). A fat binary is a 16-byte header (magic 0xBA55ED50, version, header size,
size of the entries) followed by entries, each a header (kind at byte 0: 1 = PTX, 2 = ELF; header size at
4; payload size at 8; SM number at 28; flags at 40) and its payload. ELF payloads are the cubins for one
SM each; nvcc compresses only PTX by default, so a cubin is a plain ELF (machine EM_CUDA) whose symbol
table names the kernels. Only the standard library is used.
"""
import argparse
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50
FATBIN_SECTIONS = (".nv_fatbin", "__nv_relfatbin")
KIND_ELF = 2
EM_CUDA = 190
STT_NAMES = {0: "STT_NOTYPE", 1: "STT_OBJECT", 2: "STT_FUNC", 3: "STT_SECTION", 4: "STT_FILE"}
STB_NAMES = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK"}


class InspectError(Exception):
    pass


def archive_members(data, path):
    """(name, bytes) of every member of a System V / GNU ar archive, or of the file itself."""
    if not data.startswith(b"!<arch>\n"):
        return [(path, data)]
    members, long_names, offset = [], b"", 8
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        if header[58:60] != b"`\n":
            raise InspectError(f"{path}: bad archive member header at byte {offset}")
        name = header[0:16].decode("ascii", "replace").rstrip()
        size = int(header[48:58].decode("ascii").strip())
        body = data[offset + 60:offset + 60 + size]
        if name == "//":
            long_names = body
        elif name.startswith("/") and name[1:].isdigit():
            start = int(name[1:])
            end = long_names.find(b"/\n", start)
            members.append((long_names[start:end].decode(), body))
        elif name not in ("/", "/SYM64/"):
            members.append((name.rstrip("/"), body))
        offset += 60 + size + (size & 1)
    return members


def elf_sections(elf, what):
    """{name: (type, offset, size, link)} of a little-endian ELF64 file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise InspectError(f"{what}: not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = []
    for i in range(shnum):
        name, sh_type, _flags, _addr, offset, size, link = struct.unpack_from("<IIQQQQI", elf, shoff + i * shentsize)
        headers.append((name, sh_type, offset, size, link))
    names_offset = headers[shstrndx][2]
    sections = {}
    for index, (name, sh_type, offset, size, link) in enumerate(headers):
        end = elf.find(b"\0", names_offset + name)
        sections[elf[names_offset + name:end].decode()] = (sh_type, offset, size, link, index)
    return sections, headers


def cubins(member_name, obj):
    """(sm, cubin bytes or None when compressed) for every ELF image in the object's fat binaries."""
    if not obj.startswith(b"\x7fELF"):
        return []
    sections, _ = elf_sections(obj, member_name)
    found = []
    for section in FATBIN_SECTIONS:
        if section not in sections:
            continue
        _type, start, size, _link, _index = sections[section]
        fatbin, offset = obj[start:start + size], 0
        while offset + 16 <= len(fatbin):
            magic, _version, header_size, entries_size = struct.unpack_from("<IHHQ", fatbin, offset)
            if magic != FATBIN_MAGIC:
                offset += 8  # fat binaries are 8-byte aligned; skip padding between them
                continue
            entry, end = offset + header_size, offset + header_size + entries_size
            while entry < end:
                kind, _attr, entry_header, payload_size = struct.unpack_from("<HHIQ", fatbin, entry)
                sm, = struct.unpack_from("<I", fatbin, entry + 28)
                payload = fatbin[entry + entry_header:entry + entry_header + payload_size]
                if kind == KIND_ELF:
                    plain = payload.startswith(b"\x7fELF")
                    if plain and struct.unpack_from("<H", payload, 18)[0] != EM_CUDA:
                        raise InspectError(f"{member_name}: sm_{sm} image is not a CUDA ELF")
                    found.append((sm, payload if plain else None))
                entry += entry_header + payload_size
            offset = end
    return found


def cubin_symbols(cubin, what):
    sections, headers = elf_sections(cubin, what)
    symbols = []
    for sh_type, offset, size, link, _index in sections.values():
        if sh_type != 2:  # SHT_SYMTAB
            continue
        strings = headers[link][2]
        for pos in range(offset, offset + size, 24):
            name, info, _other, _shndx, _value, _size = struct.unpack_from("<IBBHQQ", cubin, pos)
            end = cubin.find(b"\0", strings + name)
            symbols.append((info & 0xF, info >> 4, cubin[strings + name:end].decode()))
    return symbols


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list-elf", action="store_true", help="list the ELF images and their SM")
    parser.add_argument("--symbols", action="store_true", help="print the symbols of the ELF images")
    parser.add_argument("--arch", help="only images for this SM, e.g. sm_80")
    parser.add_argument("file")
    args = parser.parse_args()
    try:
        with open(args.file, "rb") as f:
            data = f.read()
        count = 0
        for member_name, obj in archive_members(data, args.file):
            for sm, cubin in cubins(member_name, obj):
                arch = f"sm_{sm}"
                if args.arch and args.arch != arch:
                    continue
                count += 1
                if args.list_elf:
                    note = "" if cubin is not None else "  (compressed: symbols not readable)"
                    print(f"ELF file {count:4d}: {member_name}.{arch}.cubin{note}")
                if args.symbols:
                    print(f"\nFatbin elf code:\n================\narch = {arch}\nfile = {member_name}\n\nsymbols:")
                    if cubin is None:
                        print("(compressed ELF image: symbols not readable)")
                        continue
                    for sym_type, bind, name in cubin_symbols(cubin, f"{member_name} {arch}"):
                        print(f"{STT_NAMES.get(sym_type, sym_type)} {STB_NAMES.get(bind, bind)} {name}")
    except (InspectError, OSError, struct.error, ValueError) as e:
        print(f"cuda_elf_inspect: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
