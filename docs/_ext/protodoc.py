"""Sphinx directive ``.. proto-file:: npystream/v1/tensors.proto``: the
services, messages and enums of a .proto file with their comments, read by
protoc from the file itself (descriptor set with source info), so the
rendered contract is always the one in proto/."""
import os
import subprocess
import tempfile

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.util.nodes import nested_parse_with_titles
from google.protobuf import descriptor_pb2

_FIELD_TYPE = {v: k[len("TYPE_"):].lower()
               for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}
# FileDescriptorProto / DescriptorProto / ... field numbers used in
# SourceCodeInfo paths.
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _NESTED, _NESTED_ENUM, _VALUE, _METHOD = 2, 3, 4, 2, 2


def _comments(locations, path):
    loc = locations.get(tuple(path))
    if loc is None:
        return ""
    text = " ".join(part.strip() for part in (loc.leading_comments, loc.trailing_comments)
                    if part.strip())
    return _escape(" ".join(text.split()))


def _escape(text):
    """Comment text as plain reStructuredText: its markup characters kept."""
    for ch in "\\*`|_":
        text = text.replace(ch, "\\" + ch)
    return text


def _type_name(field, package):
    if field.type_name:
        name = field.type_name.lstrip(".")
        return name[len(package) + 1:] if name.startswith(package + ".") else name
    return _FIELD_TYPE[field.type]


class _Writer:
    def __init__(self, fd):
        self.fd = fd
        self.locations = {tuple(loc.path): loc for loc in fd.source_code_info.location}
        self.lines = []

    def emit(self, line=""):
        self.lines.append(line)

    def heading(self, text, char):
        self.emit(text)
        self.emit(char * len(text))
        self.emit()

    def paragraph(self, path):
        text = _comments(self.locations, path)
        if text:
            self.emit(text)
            self.emit()

    def service(self, i, service):
        self.heading(f"service {service.name}", "~")
        self.paragraph([_SERVICE, i])
        for j, m in enumerate(service.method):
            arg = ("stream " if m.client_streaming else "") + _short(m.input_type, self.fd)
            ret = ("stream " if m.server_streaming else "") + _short(m.output_type, self.fd)
            self.emit(f"``rpc {m.name}({arg}) returns ({ret})``")
            text = _comments(self.locations, [_SERVICE, i, _METHOD, j])
            if text:
                self.emit(f"   {text}")
            self.emit()

    def message(self, path, message, prefix=""):
        name = prefix + message.name
        self.heading(f"message {name}", "~")
        self.paragraph(path)
        if message.field:
            self.emit(".. list-table::")
            self.emit("   :header-rows: 1")
            self.emit("   :widths: 20 25 6 49")
            self.emit()
            self.emit("   * - field")
            self.emit("     - type")
            self.emit("     - number")
            self.emit("     - meaning")
            for j, f in enumerate(message.field):
                kind = _type_name(f, self.fd.package)
                if f.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
                    kind = f"repeated {kind}"
                if f.HasField("oneof_index") and not f.proto3_optional:
                    kind += f" (oneof {message.oneof_decl[f.oneof_index].name})"
                self.emit(f"   * - ``{f.name}``")
                self.emit(f"     - ``{kind}``")
                self.emit(f"     - {f.number}")
                self.emit(f"     - {_comments(self.locations, path + [_FIELD, j]) or ' '}")
            self.emit()
        for k, nested in enumerate(message.nested_type):
            if nested.options.map_entry:
                continue
            self.message(path + [_NESTED, k], nested, prefix=name + ".")
        for k, enum in enumerate(message.enum_type):
            self.enum(path + [_NESTED_ENUM, k], enum, prefix=name + ".")

    def enum(self, path, enum, prefix=""):
        self.heading(f"enum {prefix}{enum.name}", "~")
        self.paragraph(path)
        for j, v in enumerate(enum.value):
            text = _comments(self.locations, path + [_VALUE, j])
            self.emit(f"- ``{v.name} = {v.number}``" + (f": {text}" if text else ""))
        self.emit()

    def render(self):
        self.heading(f"{self.fd.name} (package ``{self.fd.package}``)", "-")
        self.emit(" ".join(_comments(self.locations, [12]).split()) or "")
        self.emit()
        for i, s in enumerate(self.fd.service):
            self.service(i, s)
        for i, m in enumerate(self.fd.message_type):
            self.message([_MESSAGE, i], m)
        for i, e in enumerate(self.fd.enum_type):
            self.enum([_ENUM, i], e)
        return self.lines


def _short(type_name, fd):
    name = type_name.lstrip(".")
    return name[len(fd.package) + 1:] if name.startswith(fd.package + ".") else name


def describe(proto_root, relative):
    """The FileDescriptorProto of proto_root/relative, with source info."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run(["protoc", f"-I{proto_root}", "--include_source_info",
                        f"--descriptor_set_out={out}", relative], check=True)
        with open(out, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    return fds.file[-1]


class ProtoFile(Directive):
    required_arguments = 1

    def run(self):
        env = self.state.document.settings.env
        root = env.config.protodoc_root
        relative = self.arguments[0]
        env.note_dependency(os.path.join(root, relative))
        try:
            lines = _Writer(describe(root, relative)).render()
        except (OSError, subprocess.CalledProcessError) as err:
            raise self.error(f"proto-file {relative}: {err}")
        # Sections of their own under the page's title ("-" then "~").
        container = nodes.Element()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source=relative), container)
        return container.children


def setup(app):
    app.add_config_value("protodoc_root", "", "env")
    app.add_directive("proto-file", ProtoFile)
    return {"parallel_read_safe": True, "version": "1"}
