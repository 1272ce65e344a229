#!/usr/bin/env python3
"""Renders deploy/helm/longnet the way `helm template` does, for the Go-template subset the chart uses.

Helm is not packaged by Debian, and CI has no network: this renderer lets the tests validate exactly what
the chart produces. It knows only what the chart's templates use, and refuses anything else with the file
and the action, so a template that grows past the subset fails loudly instead of rendering wrong:

  {{ PIPELINE }}  {{- ... -}} (trim the whitespace before / after)  {{/* comment */}}
  {{ if PIPELINE }} ... {{ else }} ... {{ end }}   (Go truthiness: false, 0, "", empty list/map, nil)
  PIPELINE: COMMAND [| COMMAND]...; the value of each stage is the last argument of the next
  COMMAND: a field (.Values.a.b, .Release.Name, .Release.Namespace, .Chart.Name, .Chart.Version,
           .Chart.AppVersion), a "string", an integer, or a function with arguments:
           quote, toYaml, nindent N, indent N, add A B..., not A, required "message" A

Values are values.yaml merged with each -f file in order, as Helm does (maps merge key by key, anything
else is replaced, null removes the key); every merged result is checked against values.schema.json.
Templates whose name starts with "_" and NOTES.txt are not rendered; the output is the list of documents
of every template, in file name order, empty documents dropped.

Command line: render.py CHART [-f VALUES]... [--release NAME] [--namespace NS] [--output-dir DIR]
(YAML on stdout, or one file per template in DIR: how deploy/k8s/ is written)
"""

import argparse
import json
import os
import re
import sys

import jsonschema
import yaml


class TemplateError(Exception):
    pass


# ---------------------------------------------------------------- values
def merge_values(base, overlay):
    """Helm's coalescing of a values file over another."""
    out = dict(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def chart_values(chart_dir, value_files=()):
    values = load_yaml(os.path.join(chart_dir, "values.yaml"))
    for path in value_files:
        values = merge_values(values, load_yaml(path))
    schema_path = os.path.join(chart_dir, "values.schema.json")
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=lambda e: list(e.path))
    if errors:
        where = ", ".join(value_files) or "values.yaml"
        raise TemplateError("values (" + where + ") do not match values.schema.json: " + "; ".join(
            f"{'.'.join(str(p) for p in e.path) or '(top)'}: {e.message}" for e in errors))
    return values


# ---------------------------------------------------------------- functions
def to_yaml(value):
    # Helm's toYaml (sigs.k8s.io/yaml): block style, keys sorted, no trailing newline.
    if value is None:
        return "null"
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def go_string(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise TemplateError(f"cannot print a {type(value).__name__} without toYaml: {value!r}")
    return str(value)


def truthy(value):
    return not (value is None or value is False or value == 0 or value == "" or value == [] or value == {})


def _quote(*args):
    return " ".join(json.dumps(go_string(a)) for a in args)


def _indent(n, text):
    pad = " " * int(n)
    return "\n".join(pad + line for line in go_string(text).split("\n"))


def _add(*args):
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise TemplateError(f"add takes integers, got {args!r}")
    return sum(args)


def _required(message, value):
    if value is None or value == "":
        raise TemplateError(f"required: {message}")
    return value


FUNCTIONS = {
    "quote": _quote,
    "toYaml": to_yaml,
    "nindent": lambda n, text: "\n" + _indent(n, text),
    "indent": _indent,
    "add": _add,
    "not": lambda value: not truthy(value),
    "required": _required,
}

# ---------------------------------------------------------------- parsing
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\||[^\s|"]+)')


def tokenize(text):
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise TemplateError(f"cannot read {text[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


def evaluate_term(token, context):
    if token.startswith('"'):
        return json.loads(token)
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    if token in ("true", "false"):
        return token == "true"
    if token.startswith("."):
        parts = token[1:].split(".")
        if parts[0] not in ("Values", "Release", "Chart"):
            raise TemplateError(f"unsupported field {token}")
        value = context
        for part in parts:
            if not isinstance(value, dict):
                raise TemplateError(f"{token}: {part} is read from a {type(value).__name__}")
            value = value.get(part)  # a missing key is nil, as in Helm
        return value
    raise TemplateError(f"unsupported term {token!r}")


def evaluate(expression, context):
    tokens = tokenize(expression)
    stages, current = [], []
    for t in tokens:
        if t == "|":
            stages.append(current)
            current = []
        else:
            current.append(t)
    stages.append(current)
    value, have_value = None, False
    for stage in stages:
        if not stage:
            raise TemplateError(f"empty pipeline stage in {expression!r}")
        head, args = stage[0], [evaluate_term(a, context) for a in stage[1:]]
        if head in FUNCTIONS:
            if have_value:
                args.append(value)
            value = FUNCTIONS[head](*args)
        else:
            if args or have_value:
                raise TemplateError(f"{head} is not a function (in {expression!r})")
            value = evaluate_term(head, context)
        have_value = True
    return value


def parse(text, name):
    """Template text -> a tree: list of str | ("out", expr) | ("if", expr, then, else)."""
    pieces = []
    pos = 0
    for m in _ACTION.finditer(text):
        literal = text[pos:m.start()]
        if m.group(1):
            literal = literal.rstrip(" \t\r\n")
        if pieces and isinstance(pieces[-1], tuple) and pieces[-1][0] == "trim-right":
            pieces.pop()
            literal = literal.lstrip(" \t\r\n")
        pieces.append(literal)
        body = m.group(2)
        pieces.append(("action", body))
        if m.group(3):
            pieces.append(("trim-right",))
        pos = m.end()
    tail = text[pos:]
    if pieces and isinstance(pieces[-1], tuple) and pieces[-1][0] == "trim-right":
        pieces.pop()
        tail = tail.lstrip(" \t\r\n")
    pieces.append(tail)

    root = []
    stack = [("root", root)]
    for piece in pieces:
        target = stack[-1][1]
        if isinstance(piece, str):
            target.append(piece)
            continue
        body = piece[1]
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError(f"{name}: unterminated comment")
            continue
        word = body.split(None, 1)[0] if body else ""
        if word == "if":
            node = ["if", body[2:].strip(), [], []]
            target.append(node)
            stack.append(("if", node[2], node))
        elif word == "else" and body == "else":
            if stack[-1][0] != "if":
                raise TemplateError(f"{name}: else outside if")
            node = stack[-1][2]
            stack[-1] = ("else", node[3], node)
        elif word == "end" and body == "end":
            if stack[-1][0] not in ("if", "else"):
                raise TemplateError(f"{name}: end without if")
            stack.pop()
        elif word in ("range", "with", "define", "template", "block", "include", "define", "else"):
            raise TemplateError(f"{name}: {{{{ {body} }}}} is outside the subset render.py supports")
        else:
            target.append(("out", body))
    if len(stack) != 1:
        raise TemplateError(f"{name}: if without end")
    return root


def execute(tree, context, name):
    out = []
    for node in tree:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, tuple):
            try:
                out.append(go_string(evaluate(node[1], context)))
            except TemplateError as e:
                raise TemplateError(f"{name}: {{{{ {node[1]} }}}}: {e}") from None
        else:
            try:
                condition = truthy(evaluate(node[1], context))
            except TemplateError as e:
                raise TemplateError(f"{name}: {{{{ if {node[1]} }}}}: {e}") from None
            out.append(execute(node[2] if condition else node[3], context, name))
    return "".join(out)


# ---------------------------------------------------------------- the chart
def render_chart(chart_dir, value_files=(), release="longnet", namespace="default"):
    """Returns [(template file name, rendered text)]."""
    chart = load_yaml(os.path.join(chart_dir, "Chart.yaml"))
    context = {
        "Values": chart_values(chart_dir, value_files),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart.get("appVersion")},
    }
    templates_dir = os.path.join(chart_dir, "templates")
    rendered = []
    for file_name in sorted(os.listdir(templates_dir)):
        if file_name.startswith("_") or file_name == "NOTES.txt" or not file_name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(templates_dir, file_name), encoding="utf-8") as f:
            tree = parse(f.read(), file_name)
        rendered.append((file_name, execute(tree, context, file_name)))
    return rendered


def render_documents(chart_dir, value_files=(), release="longnet", namespace="default"):
    """The chart's objects: [(template file name, dict)]."""
    docs = []
    for file_name, text in render_chart(chart_dir, value_files, release, namespace):
        try:
            parsed = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            raise TemplateError(f"{file_name} renders to invalid YAML: {e}\n{text}") from None
        docs += [(file_name, d) for d in parsed if d]
    return docs


def plain_header(value_files):
    names = " ".join(f"-f {os.path.basename(v)}" for v in value_files)
    return (f"# Rendered from deploy/helm/longnet ({names or 'values.yaml'}) by deploy/validate/render.py:\n"
            "# do not edit; change the chart and render again (tests/deploy checks they are equal).\n")


def plain_manifest_texts(rendered, header):
    """{file name: text} of the plain manifests for a rendered chart."""
    return {file_name: header + text.strip("\n") + "\n" for file_name, text in rendered if text.strip()}


def write_plain_manifests(rendered, output_dir, header):
    os.makedirs(output_dir, exist_ok=True)
    for file_name, text in plain_manifest_texts(rendered, header).items():
        with open(os.path.join(output_dir, file_name), "w", encoding="utf-8") as f:
            f.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chart")
    parser.add_argument("-f", "--values", action="append", default=[])
    parser.add_argument("--release", default="longnet")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--output-dir", help="write one file per template here (deploy/k8s/*)")
    args = parser.parse_args(argv)
    try:
        rendered = render_chart(args.chart, args.values, args.release, args.namespace)
    except TemplateError as e:
        sys.exit(f"render.py: {e}")
    if args.output_dir:
        write_plain_manifests(rendered, args.output_dir, plain_header(args.values))
        return
    for file_name, text in rendered:
        if text.strip():
            sys.stdout.write(f"---\n# Source: {os.path.basename(args.chart.rstrip('/'))}/templates/{file_name}\n")
            sys.stdout.write(text.strip("\n") + "\n")


if __name__ == "__main__":
    main()
