"""What the renderers read from one report node."""

from osprof_collector import query


def duration_ms(node):
    return node["info"]["finished"] - node["info"]["started"]


def error(node):
    """(etype, message) of a span that raised, else None."""
    etype = node["info"].get("exception")
    if etype in (None, "None"):
        return None
    stop = node["info"].get(f"meta.raw_payload.{node['info']['name']}-stop")
    info = (stop or {}).get("info")
    message = info.get("message") if isinstance(info, dict) else None
    return etype, "" if message is None else str(message)


def where(node):
    return query.where(node["info"]["service"], node["info"]["host"])


def markers(node):
    marks = []
    failure = error(node)
    if failure:
        marks.append(f"ERROR {failure[0]}: {failure[1]}".rstrip(": "))
    if node.get("open"):
        marks.append("OPEN")
    if node.get("start_missing"):
        marks.append("START MISSING")
    if node.get("orphan"):
        marks.append("ORPHAN")
    return marks


def subtree_size(node):
    """The node and all its descendants."""
    count, stack = 0, [node]
    while stack:
        current = stack.pop()
        count += 1
        stack.extend(current["children"])
    return count
