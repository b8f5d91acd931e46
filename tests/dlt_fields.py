"""Which fields of the toolbox struct a function reads and writes, found by running it.

A field is named ``name`` (a field of the struct itself, e.g. ``ffW``) or
``kind.name`` (that field of every layer of type kind, e.g. ``c.k``: the
kernels of every 'c' layer; ``i.a``: the input layer's maps). A function
*writes* a field when some value under it is a new object afterwards (the
toolbox's functions and the literal port mutate or replace; convprop's
return new structs sharing what they did not write). It *reads* a field when
removing that field makes it fail.
"""

import copy

from convprop import ConvpropError

KINDS = ("i", "c", "s")


def fields(net):
    """Every field of a struct, as ``name`` / ``kind.name``."""
    names = {k for k in net if k != "layers"}
    for spec in net["layers"]:
        names |= {f"{spec['type']}.{k}" for k in spec}
    return names


def _leaves(value):
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _values(net, field):
    """The objects under a field (every leaf, of every layer of its kind)."""
    if "." not in field:
        return _leaves(net[field]) if field in net else None
    kind, name = field.split(".")
    found = [leaf for spec in net["layers"] if spec.get("type") == kind and name in spec for leaf in _leaves(spec[name])]
    return found or None


def snapshot(net):
    """The objects under every field now (kept alive, so that identities stay meaningful)."""
    return {field: _values(net, field) for field in fields(net)}


def written(before, after):
    """The fields of struct ``after`` whose objects are not those of the ``snapshot`` ``before``."""
    out = set()
    for field in fields(after):
        old, new = before.get(field), _values(after, field)
        if old is None or len(old) != len(new) or any(a is not b for a, b in zip(old, new)):
            out.add(field)
    return out


def without(net, field):
    """A deep copy of the struct without ``field``."""
    net = copy.deepcopy(net)
    if "." not in field:
        del net[field]
        return net
    kind, name = field.split(".")
    for spec in net["layers"]:
        if spec.get("type") == kind:
            spec.pop(name, None)
    return net


def reads(run, net, errors=(ConvpropError,)):
    """The fields of ``net`` whose removal makes ``run`` fail with one of ``errors``."""
    out = set()
    for field in sorted(fields(net)):
        try:
            run(without(net, field))
        except errors:
            out.add(field)
    return out
