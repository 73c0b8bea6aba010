"""A PartiQL reader for DynamoDB statements: tokens, the verb, table and key terms of a
statement (:func:`parse_statement`), the table a statement names and the statement renamed
(:func:`statement_table`, :func:`rename_statement`), and the statements of a PartiQL call.

Pure: it imports nothing from dualwrite, nor boto3, and never calls AWS. It reads
conservatively: whatever it is not sure of is answered ``None``, so that a write is reported
``unsupported`` rather than mirrored to a guessed key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<comment>--|/\*)
    | (?P<str>'(?:[^']|'')*')
    | (?P<qid>"(?:[^"]|"")*")
    | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<param>\?)
    | (?P<id>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<op><<|>>|<=|>=|<>|!=|\|\||[{}\[\](),:.=<>+\-*/%;])
    """,
    re.VERBOSE,
)
_OPEN = {"{": "}", "[": "]", "(": ")", "<<": ">>"}
_CLOSE = frozenset(_OPEN.values())


@attrs.frozen
class _Token:
    kind: str
    text: str
    param: int = -1  # index into Parameters, for "?"
    start: int = attrs.field(default=-1, eq=False)  # its span in the statement
    end: int = attrs.field(default=-1, eq=False)

    def keyword(self) -> str:
        return self.text.upper() if self.kind == "id" else ""


@attrs.frozen
class _Value:
    """A scalar in a statement: a literal, or the ``index``-th parameter."""

    kind: str  # "str", "num" or "param"
    text: str = ""
    index: int = -1


@attrs.frozen
class Statement:
    """What :func:`parse_statement` could tell about one PartiQL statement.

    Attributes:
        verb: ``"SELECT"``, ``"INSERT"``, ``"UPDATE"``, ``"DELETE"``, ``"EXISTS"``, or ``""``.
        table: the table name, or ``None``.
        terms: attribute name -> the scalar it is equal to, for the names that may be key
            attributes (an INSERT's top-level values; a WHERE clause's ``name = value`` terms).
            ``None`` when the statement cannot be read safely.
    """

    verb: str
    table: str | None
    terms: Mapping[str, _Value] | None

    @property
    def is_read(self) -> bool:
        """SELECT, or an EXISTS condition: nothing is written."""
        return self.verb in ("SELECT", "EXISTS")

    def key(self, schema: tuple[str, ...] | None, parameters: Any, level: str) -> Any:
        """The statement's key in the caller's format, or ``None`` when it cannot be known.

        ``level``: ``"client"`` for typed values (``{"S": "a"}``), else Python values.
        """
        if schema is None or self.terms is None:
            return None
        key = {}
        for name in schema:
            value = self.terms.get(name)
            if value is None:
                return None
            if value.kind == "param":
                if not isinstance(parameters, Sequence) or not 0 <= value.index < len(parameters):
                    return None
                key[name] = parameters[value.index]
            elif value.kind == "str":
                text = value.text[1:-1].replace("''", "'")
                key[name] = {"S": text} if level == "client" else text
            else:
                key[name] = {"N": value.text} if level == "client" else Decimal(value.text)
        return key


def _tokenize(statement: str) -> list[_Token] | None:
    tokens: list[_Token] = []
    position, params = 0, 0
    while position < len(statement):
        match = _TOKEN_RE.match(statement, position)
        if match is None or match.lastgroup == "comment":
            return None
        position = match.end()
        kind = str(match.lastgroup)
        if kind == "ws":
            continue
        if kind == "param":
            tokens.append(_Token(kind, "?", params, match.start(), match.end()))
            params += 1
        else:
            tokens.append(_Token(kind, match.group(), -1, match.start(), match.end()))
    return tokens


def _name(token: _Token) -> str | None:
    if token.kind == "id":
        return token.text
    if token.kind == "qid":
        return token.text[1:-1].replace('""', '"')
    return None


def _scalar(tokens: Sequence[_Token]) -> _Value | None:
    if len(tokens) == 1 and tokens[0].kind in ("str", "num"):
        return _Value(tokens[0].kind, tokens[0].text)
    if len(tokens) == 1 and tokens[0].kind == "param":
        return _Value("param", index=tokens[0].param)
    if len(tokens) == 2 and tokens[0].text == "-" and tokens[1].kind == "num":
        return _Value("num", "-" + tokens[1].text)
    return None


def _split_top(
    tokens: Sequence[_Token], separator: Callable[[_Token], bool]
) -> list[list[_Token]] | None:
    """Split at depth 0 where ``separator`` holds; ``None`` on unbalanced brackets."""
    parts: list[list[_Token]] = [[]]
    stack: list[str] = []
    for token in tokens:
        if token.kind == "op" and token.text in _OPEN:
            stack.append(_OPEN[token.text])
        elif token.kind == "op" and token.text in _CLOSE:
            if not stack or stack.pop() != token.text:
                return None
        elif not stack and separator(token):
            parts.append([])
            continue
        parts[-1].append(token)
    return None if stack else parts


def _where_terms(tokens: Sequence[_Token]) -> dict[str, _Value] | None:
    """``name = value`` terms of a WHERE clause made of AND-ed conditions, else ``None``."""
    if any(t.keyword() in ("OR", "BETWEEN") for t in _depth0(tokens)):
        return None
    conjuncts = _split_top(tokens, lambda t: t.keyword() == "AND")
    if conjuncts is None:
        return None
    terms: dict[str, _Value] = {}
    ambiguous: set[str] = set()
    for conjunct in conjuncts:
        if not conjunct:
            return None
        if len(conjunct) >= 3 and conjunct[1].text == "=" and conjunct[1].kind == "op":
            name, value = _name(conjunct[0]), _scalar(conjunct[2:])
            if name is not None and value is not None:
                if name in terms:
                    ambiguous.add(name)
                terms[name] = value
    for name in ambiguous:
        del terms[name]
    return terms


def _depth0(tokens: Sequence[_Token]) -> Iterator[_Token]:
    depth = 0
    for token in tokens:
        if token.kind == "op" and token.text in _OPEN:
            depth += 1
        elif token.kind == "op" and token.text in _CLOSE:
            depth -= 1
        elif depth == 0:
            yield token


def _document_terms(tokens: Sequence[_Token]) -> dict[str, _Value] | None:
    """Top-level ``'name': value`` pairs of an INSERT's ``{...}`` document."""
    if len(tokens) < 2 or tokens[0].text != "{" or tokens[-1].text != "}":
        return None
    pairs = _split_top(tokens[1:-1], lambda t: t.kind == "op" and t.text == ",")
    if pairs is None:
        return None
    terms: dict[str, _Value] = {}
    for pair in pairs:
        if len(pair) < 3 or pair[1].text != ":":
            return None
        if pair[0].kind == "str":
            name: str | None = pair[0].text[1:-1].replace("''", "'")
        else:
            name = _name(pair[0])
        if name is None or name in terms:
            return None
        value = _scalar(pair[2:])
        if value is not None:
            terms[name] = value
    return terms


def parse_statement(statement: str) -> Statement:
    """Read the verb, table and key terms of one PartiQL statement, conservatively.

    Anything this parser is not sure of (comments, ``OR``, nested conditions, a key attribute
    named twice) leaves ``terms`` as ``None``: the write is then reported ``unsupported`` rather
    than mirrored to a guessed key.
    """
    tokens = _tokenize(statement)
    if not tokens:
        return Statement(verb="", table=None, terms=None)
    verb = tokens[0].keyword()
    if verb in ("SELECT", "EXISTS"):
        return Statement(verb=verb, table=None, terms=None)
    if verb == "INSERT":
        if len(tokens) < 4 or tokens[1].keyword() != "INTO":
            return Statement(verb=verb, table=None, terms=None)
        table = _name(tokens[2])
        if tokens[3].keyword() != "VALUE":
            return Statement(verb=verb, table=table, terms=None)
        return Statement(verb=verb, table=table, terms=_document_terms(tokens[4:]))
    if verb in ("UPDATE", "DELETE"):
        start = 1
        if verb == "DELETE":
            if len(tokens) < 3 or tokens[1].keyword() != "FROM":
                return Statement(verb=verb, table=None, terms=None)
            start = 2
        if len(tokens) <= start:
            return Statement(verb=verb, table=None, terms=None)
        table = _name(tokens[start])
        rest = tokens[start + 1 :]
        if rest and rest[0].text == ".":
            return Statement(verb=verb, table=table, terms=None)
        clauses = _split_top(rest, lambda t: t.keyword() in ("WHERE", "RETURNING"))
        wheres = [i for i, t in enumerate(_depth0(rest)) if t.keyword() == "WHERE"]
        if clauses is None or len(wheres) != 1:
            return Statement(verb=verb, table=table, terms=None)
        # clauses: [before WHERE, condition, (returning)]
        return Statement(verb=verb, table=table, terms=_where_terms(clauses[1]))
    return Statement(verb=verb, table=None, terms=None)


_PARTIQL = {
    "ExecuteStatement": None,
    "BatchExecuteStatement": "Statements",
    "ExecuteTransaction": "TransactStatements",
}


def _table_token(tokens: Sequence[_Token]) -> _Token | None:
    """The token naming the table of a statement (any verb), or ``None``."""
    if not tokens:
        return None
    verb = tokens[0].keyword()
    if verb in ("INSERT", "DELETE"):
        keyword = "INTO" if verb == "INSERT" else "FROM"
        return tokens[2] if len(tokens) > 2 and tokens[1].keyword() == keyword else None
    if verb == "UPDATE":
        return tokens[1] if len(tokens) > 1 else None
    if verb == "SELECT":
        depth0 = list(_depth0(tokens))
        for position, token in enumerate(depth0[:-1]):
            if token.keyword() == "FROM":
                return depth0[position + 1]
    if verb == "EXISTS":  # EXISTS(SELECT ... FROM t ...): the table of the inner SELECT
        for position, token in enumerate(tokens[:-1]):
            if token.keyword() == "FROM":
                return tokens[position + 1]
    return None


def statement_table(statement: Any) -> str | None:
    """The table a PartiQL statement names (any verb), or ``None``."""
    if not isinstance(statement, str):
        return None
    token = _table_token(_tokenize(statement) or [])
    return None if token is None else _name(token)


def rename_statement(statement: Any, rename: Callable[[str], str | None]) -> str | None:
    """The statement with its table renamed by ``rename``; ``None`` when that is not sure.

    Only the table's own token changes (quoted: ``"orders-v2"``); literals, parameters and
    the rest of the text are kept byte for byte.
    """
    if not isinstance(statement, str):
        return None
    token = _table_token(_tokenize(statement) or [])
    name = None if token is None else _name(token)
    if token is None or name is None:
        return None
    new = rename(name)
    if new is None:
        return None
    if new == name:
        return statement
    quoted = '"' + new.replace('"', '""') + '"'
    return statement[: token.start] + quoted + statement[token.end :]


def _statements(api: str, params: Mapping[str, Any]) -> list[Any]:
    field = _PARTIQL[api]
    if field is None:
        return [params]
    entries = params.get(field)
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        return []
    return list(entries)
