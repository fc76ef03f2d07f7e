"""Exercise self-tests for 08-future: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    # bytes route, with an explicit copy of each tensor's memory
    "ex1-save-weights": [
        """
def save_weights(state_dict, path, metadata):
    from pathlib import Path
    from safetensors.torch import save
    tensors = {}
    for name, tensor in state_dict.items():
        tensors[name] = tensor.detach().cpu().clone(memory_format=torch.contiguous_format)
    Path(path).write_bytes(save(tensors, metadata={str(k): str(v) for k, v in metadata.items()}))
""",
        # fresh contiguous tensors filled with copy_, the path passed as is, metadata unpacked
        """
def save_weights(state_dict, path, metadata):
    from safetensors.torch import save_file as write
    own = {}
    for key in state_dict:
        src = state_dict[key].detach()
        own[key] = torch.empty(src.shape, dtype=src.dtype).copy_(src)
    write(own, path, metadata={**metadata})
""",
    ],
    # onnx.defs directly: the schema in force at the target is newer than the model's opset
    "ex2-recheck": [
        """
def operators_to_recheck(model, target_opset):
    import onnx.defs
    current = [i.version for i in model.opset_import if i.domain in ("", "ai.onnx")][0]
    names = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in names:
            continue
        if onnx.defs.get_schema(node.op_type, target_opset, "").since_version > current:
            names.append(node.op_type)
    return sorted(names)
""",
        # the whole schema history of the default domain gathered once, domains normalised to 'ai.onnx'
        """
def operators_to_recheck(model, target_opset):
    import onnx.defs
    imports = {(i.domain or "ai.onnx"): i.version for i in model.opset_import}
    current = imports["ai.onnx"]
    versions = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain in ("", "ai.onnx"):
            versions.setdefault(s.name, set()).add(s.since_version)
    ops = {n.op_type for n in model.graph.node if (n.domain or "ai.onnx") == "ai.onnx"}
    return sorted(o for o in ops if any(current < v <= target_opset for v in versions.get(o, ())))
""",
    ],
    # a real stack simulation of the few opcodes that matter, memo as a list of values
    "ex3-imports": [
        """
def pickle_imports(data):
    text_ops = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
                "SHORT_BINUNICODE", "BINUNICODE8"}
    seen, memo, pushes = [], {}, []
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in text_ops:
            pushes.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushes.append(memo.get(arg))
        elif name in ("GLOBAL", "INST"):
            module, attr = arg.split(" ", 1)
            target = module + "." + attr
            if target not in seen:
                seen.append(target)
            pushes.append(object())
        elif name == "STACK_GLOBAL":
            target = f"{pushes[-2]}.{pushes[-1]}"
            del pushes[-2:]
            if target not in seen:
                seen.append(target)
            pushes.append(object())
        elif name == "MEMOIZE":
            memo[len(memo)] = pushes[-1] if pushes else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushes[-1] if pushes else None
        elif name not in ("PROTO", "FRAME", "STOP", "MARK"):
            pushes.append(object())
    return seen
""",
        # a generic stack machine driven by each opcode's stack_before/stack_after
        """
def pickle_imports(data):
    texts = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
             "SHORT_BINUNICODE", "BINUNICODE8"}
    mark = object()
    stack, memo, found = [], {}, []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
            continue
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1] if stack else None
            continue
        if op.name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
            continue
        if op.name == "MARK":
            stack.append(mark)
            continue
        before = op.stack_before
        if pickletools.markobject in before:
            at = len(stack) - 1 - stack[::-1].index(mark) if mark in stack else 0
            start = max(0, at - before.index(pickletools.markobject))
        else:
            start = max(0, len(stack) - len(before))
        popped = stack[start:]
        del stack[start:]
        if op.name in ("GLOBAL", "INST"):
            name = arg.replace(" ", ".", 1)
        elif op.name == "STACK_GLOBAL":
            name = f"{popped[-2]}.{popped[-1]}"
        else:
            name = None
        if name is not None and name not in found:
            found.append(name)
        if op.name in texts:
            value = arg if isinstance(arg, str) else arg.decode("latin-1")
        else:
            value = (op.name, name)
        stack.extend([value] * len(op.stack_after))
    return found
""",
    ],
}

WRONG = {
    "ex1-save-weights": [
        # the colleague's call: shared and non-contiguous tensors make save_file raise
        (
            "def save_weights(state_dict, path, metadata):\n"
            "    save_file(state_dict, str(path), metadata=metadata)\n",
            {"ex1-keys", "ex1-metadata", "ex1-values"},
        ),
        # 'fixed' by converting everything to float32: int64 and bfloat16 tensors change dtype
        (
            "def save_weights(state_dict, path, metadata):\n"
            "    save_file({k: v.detach().float().contiguous().clone() for k, v in state_dict.items()},\n"
            "              str(path), metadata=metadata)\n",
            {"ex1-values"},
        ),
        # clones correctly but forgets the metadata
        (
            "def save_weights(state_dict, path, metadata):\n"
            "    save_file({k: v.detach().clone().contiguous() for k, v in state_dict.items()}, str(path))\n",
            {"ex1-metadata"},
        ),
        # drops the duplicate name of the tied tensor (what save_model does), so a key is missing
        (
            "def save_weights(state_dict, path, metadata):\n"
            "    kept, seen = {}, set()\n"
            "    for k, v in state_dict.items():\n"
            "        if v.data_ptr() in seen:\n"
            "            continue\n"
            "        seen.add(v.data_ptr())\n"
            "        kept[k] = v.detach().clone().contiguous()\n"
            "    save_file(kept, str(path), metadata=metadata)\n",
            {"ex1-keys", "ex1-values"},
        ),
        # a pickle, not safetensors
        (
            "def save_weights(state_dict, path, metadata):\n"
            "    torch.save({'state': state_dict, 'meta': metadata}, path)\n",
            {"ex1-keys", "ex1-metadata", "ex1-values"},
        ),
        # clones into the caller's dict: the file is right, the caller's state_dict is not
        (
            "def save_weights(state_dict, path, metadata):\n    for k in list(state_dict):\n        state_dict[k] = state_dict[k].detach().clone().contiguous()\n    save_file(state_dict, str(path), metadata=dict(metadata))\n",
            {"ex1-values"},
        ),
    ],
    "ex2-recheck": [
        # off by one at the lower end: counts the change made at the model's own opset
        (
            "def operators_to_recheck(model, target_opset):\n"
            "    current = [i.version for i in model.opset_import if i.domain in ('', 'ai.onnx')][0]\n"
            "    used = {n.op_type for n in model.graph.node if n.domain in ('', 'ai.onnx')}\n"
            "    return sorted(op for op in used\n"
            "                  if any(current <= v <= target_opset for v in opsets.operator_history(op)))\n",
            {"ex2-hidden", "ex2-visible"},
        ),
        # only looks at changes made exactly at the target opset
        (
            "def operators_to_recheck(model, target_opset):\n"
            "    used = {n.op_type for n in model.graph.node if n.domain in ('', 'ai.onnx')}\n"
            "    return sorted(op for op in used if target_opset in opsets.operator_history(op))\n",
            {"ex2-hidden", "ex2-visible"},
        ),
        # every operator changed in the range, whether the model uses it or not
        (
            "def operators_to_recheck(model, target_opset):\n"
            "    current = [i.version for i in model.opset_import if i.domain in ('', 'ai.onnx')][0]\n"
            "    return ecosystem.changes_between(current, target_opset)['changed']\n",
            {"ex2-hidden", "ex2-visible"},
        ),
        # forgets the domain: looks up ai.onnx.ml operators in the default domain
        (
            "def operators_to_recheck(model, target_opset):\n"
            "    current = [i.version for i in model.opset_import if i.domain in ('', 'ai.onnx')][0]\n"
            "    used = {n.op_type for n in model.graph.node}\n"
            "    return sorted(op for op in used\n"
            "                  if any(current < v <= target_opset for v in opsets.operator_history(op)))\n",
            {"ex2-hidden"},
        ),
        # the model's opset read from the first opset_import entry, whatever its domain
        (
            "def operators_to_recheck(model, target_opset):\n    current = model.opset_import[0].version\n    used = {n.op_type for n in model.graph.node if n.domain in ('', 'ai.onnx')}\n    return sorted(op for op in used if any(current < v <= target_opset for v in opsets.operator_history(op)))\n",
            {"ex2-hidden"},
        ),
    ],
    "ex3-imports": [
        # only protocol 0-3 GLOBAL: misses STACK_GLOBAL (the default protocol since Python 3.8)
        (
            "def pickle_imports(data):\n"
            "    out = []\n"
            "    for op, arg, _ in pickletools.genops(data):\n"
            "        if op.name == 'GLOBAL' and arg.replace(' ', '.') not in out:\n"
            "            out.append(arg.replace(' ', '.'))\n"
            "    return out\n",
            {"ex3-protocols"},
        ),
        # STACK_GLOBAL from the last two literal strings, ignoring the memo (BINGET)
        (
            "def pickle_imports(data):\n"
            "    out, strings = [], []\n"
            "    for op, arg, _ in pickletools.genops(data):\n"
            "        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):\n"
            "            strings.append(arg)\n"
            "        if op.name == 'GLOBAL':\n"
            "            name = arg.replace(' ', '.')\n"
            "        elif op.name == 'STACK_GLOBAL':\n"
            "            name = strings[-2] + '.' + strings[-1]\n"
            "        else:\n"
            "            continue\n"
            "        if name not in out:\n"
            "            out.append(name)\n"
            "    return out\n",
            {"ex3-protocols"},
        ),
        # a byte grep: flags plain text that mentions a dangerous name
        (
            "def pickle_imports(data):\n"
            "    import os\n"
            "    name = os.system.__module__ + '.system'\n"
            "    return [name] if b'system' in data else []\n",
            {"ex3-plain", "ex3-protocols"},
        ),
        # flags every string in the stream
        (
            "def pickle_imports(data):\n"
            "    out = []\n"
            "    for op, arg, _ in pickletools.genops(data):\n"
            "        if isinstance(arg, str) and arg not in out:\n"
            "            out.append(arg.replace(' ', '.'))\n"
            "    return out\n",
            {"ex3-plain", "ex3-protocols", "ex3-visible"},
        ),
        # a restricted Unpickler that records find_class and loads the pickle with stand-ins
        (
            "def pickle_imports(data):\n    import io\n    found = []\n    class _Stub:\n        def __init__(self, *a, **k):\n            pass\n        def __call__(self, *a, **k):\n            return _Stub()\n        def __setstate__(self, state):\n            pass\n    class _Recorder(pickle.Unpickler):\n        def find_class(self, module, name):\n            if f'{module}.{name}' not in found:\n                found.append(f'{module}.{name}')\n            return _Stub\n    try:\n        _Recorder(io.BytesIO(data)).load()\n    except Exception:\n        pass\n    return found\n",
            {"ex3-protocols"},
        ),
    ],
}
