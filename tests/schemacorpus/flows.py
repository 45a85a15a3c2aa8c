"""Real flow signatures for the parameter-schema corpus (see gen.py).

build(pyd) defines the flows with the pydantic module pyd (``pydantic`` for
pydantic 2 models, ``pydantic.v1`` for pydantic 1 models) and returns a list
of (flow, cases). Each case is (name, deployment defaults, run parameters):
the values a deployment holds and the values a run is created with, merged
by the server as deployment.parameters.update(run parameters).

The same cases run against every Prefect version; the verdicts differ where
Prefect's schemas do (pydantic 1 leaves null out of Optional fields, for one).
"""

import datetime
import decimal
import enum
import ipaddress
import pathlib
import uuid
from typing import Any, Dict, FrozenSet, List, Literal, Mapping, Optional, Sequence, Set, Tuple, Union

from prefect import flow
from prefect.blocks.core import Block

import prefect

if prefect.__version__.startswith("2."):
    from pydantic.v1 import SecretStr as BlockSecretStr
else:
    from pydantic import SecretStr as BlockSecretStr

BLOCK_ID = "6f1c9a8e-2d7b-4c1e-9f3a-0b5d8e7c6a41"
OTHER_ID = "0d9e8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b"


class Creds(Block):
    """A block with a secret, referenced by deployments by id."""

    user: str
    password: BlockSecretStr


class Endpoint(Block):
    """A block whose fields all have defaults."""

    url: str = "http://localhost"
    timeout: float = 10.0


class Vault(Block):
    """A block with a block-typed field (block_schema_references)."""

    creds: Creds
    path: str = "/"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


def ph_var(name):
    return {"__prefect_kind": "workspace_variable", "variable_name": name}


def ph_json(text):
    return {"__prefect_kind": "json", "value": text}


def ph_jinja(template):
    return {"__prefect_kind": "jinja", "template": template}


def ph_none(value):
    return {"__prefect_kind": "none", "value": value}


# The workspace variables the hydration context holds, so that verdicts do
# not depend on a server's state. Prefect 2 variables are strings.
VARIABLES = {
    "retries": 5,
    "env": "prod",
    "nums": [1, 2, 3],
    "cfg": {"name": "from-variable", "retries": 2},
    "json_text": "[1, 2]",
    "flag": True,
}


def build(pyd):
    BaseModel, Field = pyd.BaseModel, pyd.Field
    SecretStr = pyd.SecretStr
    out = []

    def add(fn, *cases):
        out.append((fn, list(cases)))

    class Inner(BaseModel):
        n: int
        tag: Optional[str] = None
        items: List[int] = Field(default_factory=list)

    class Config(BaseModel):
        name: str
        retries: int = 3
        tags: List[str] = Field(default_factory=list)
        inner: Optional[Inner] = None
        limit: int = None  # a None default on a non-Optional type

    class Mid(BaseModel):
        inner: Inner
        note: Optional[str]  # Optional without a default

    class Outer(BaseModel):
        mid: Mid
        mids: List[Mid] = Field(default_factory=list)

    class Strict(BaseModel):
        class Config:
            extra = "forbid"

        a: int

    class Cat(BaseModel):
        kind: Literal["cat"] = "cat"
        lives: int = 9

    class Dog(BaseModel):
        kind: Literal["dog"] = "dog"
        good: bool = True

    class Pets(BaseModel):
        pet: Union[Cat, Dog] = Field(..., discriminator="kind")

    class Tree(BaseModel):
        value: int
        children: List["Tree"] = Field(default_factory=list)

    if hasattr(Tree, "model_rebuild"):
        Tree.model_rebuild()
    else:
        Tree.update_forward_refs()

    class WithCreds(BaseModel):
        creds: Creds
        label: str = "x"

    @flow(name="scalars")
    def scalars(i: int, x: float, s: str, b: bool = False):
        pass

    add(
        scalars,
        ("valid", {}, {"i": 1, "x": 1.5, "s": "a"}),
        ("integer as float without fraction", {}, {"i": 3.0, "x": 2, "s": ""}),
        ("integer in exponent form", {}, {"i": 1e3, "x": 1e-3, "s": "a"}),
        ("integer as string", {}, {"i": "1", "x": 1.5, "s": "a"}),
        ("integer with fraction", {}, {"i": 1.5, "x": 1.5, "s": "a"}),
        ("bool for integer", {}, {"i": True, "x": 1.5, "s": "a"}),
        ("bool as string", {}, {"i": 1, "x": 1.5, "s": "a", "b": "true"}),
        ("required missing", {}, {"i": 1, "x": 1.5}),
        ("required from defaults", {"s": "dflt", "x": 0}, {"i": 7}),
        ("bad deployment default overridden", {"i": "bad"}, {"i": 1, "x": 0, "s": "a"}),
        ("bad deployment default kept", {"i": "bad"}, {"x": 0, "s": "a"}),
        ("null for a plain type", {}, {"i": None, "x": 1.5, "s": "a"}),
        ("big integer", {}, {"i": 18446744073709551616, "x": 1.5, "s": "a"}),
        ("undeclared extra", {}, {"i": 1, "x": 1.5, "s": "a", "zzz": 1}),
    )

    @flow(name="optionals")
    def optionals(n: Optional[int] = None, s: Optional[str] = None, q: int = None, r: Optional[float] = 2.5):
        pass

    add(
        optionals,
        ("all null", {}, {"n": None, "s": None, "r": None}),
        ("values", {}, {"n": 1, "s": "a", "q": 2, "r": 1}),
        ("null for a None-defaulted plain type", {}, {"q": None}),
        ("wrong type", {}, {"n": "one"}),
        ("empty", {}, {}),
    )

    @flow(name="unions")
    def unions(u: Union[int, str], l: Union[List[int], Dict[str, int]] = None):
        pass

    add(
        unions,
        ("int", {}, {"u": 1}),
        ("str", {}, {"u": "a"}),
        ("float", {}, {"u": 1.5}),
        ("list", {}, {"u": 1, "l": [1, 2]}),
        ("dict", {}, {"u": 1, "l": {"a": 1}}),
        ("dict of strings", {}, {"u": 1, "l": {"a": "b"}}),
    )

    @flow(name="literals")
    def literals(mode: Literal["fast", "slow"] = "fast", level: Literal[1, 2, 3] = 1):
        pass

    add(
        literals,
        ("valid", {}, {"mode": "slow", "level": 3}),
        ("bad string", {}, {"mode": "medium"}),
        ("bad number", {}, {"level": 4}),
        ("number as string", {}, {"level": "1"}),
        ("number as float", {}, {"level": 1.0}),
    )

    @flow(name="enums")
    def enums(color: Color, size: Size = Size.SMALL):
        pass

    add(
        enums,
        ("valid", {}, {"color": "red", "size": 2}),
        ("bad member", {}, {"color": "green"}),
        ("member name not value", {}, {"color": "RED"}),
        ("int enum as string", {}, {"color": "blue", "size": "2"}),
        ("color from deployment", {"color": "blue"}, {}),
    )

    @flow(name="models")
    def models(cfg: Config, inner: Inner = None):
        pass

    add(
        models,
        ("valid full", {}, {"cfg": {"name": "a", "retries": 1, "tags": ["x"], "inner": {"n": 1}, "limit": 5}}),
        ("defaults omitted", {}, {"cfg": {"name": "a"}}),
        ("default_factory field null", {}, {"cfg": {"name": "a", "tags": None}}),
        ("Optional nested null", {}, {"cfg": {"name": "a", "inner": None}}),
        ("None-defaulted nested field null", {}, {"cfg": {"name": "a", "limit": None}}),
        ("nested Optional field null", {}, {"cfg": {"name": "a", "inner": {"n": 1, "tag": None, "items": None}}}),
        ("nested wrong type", {}, {"cfg": {"name": "a", "inner": {"n": "one"}}}),
        ("nested required missing", {}, {"cfg": {"name": "a", "inner": {}}}),
        ("required field missing", {}, {"cfg": {"retries": 1}}),
        ("extra field", {}, {"cfg": {"name": "a", "extra": True}}),
        ("model param null with None default", {}, {"cfg": {"name": "a"}, "inner": None}),
        ("model as list", {}, {"cfg": ["a"]}),
        ("model from deployment", {"cfg": {"name": "d"}}, {}),
    )

    @flow(name="model-defaults")
    def model_defaults(cfg: Config = Config(name="dflt"), tree: Tree = Tree(value=1)):
        pass

    add(
        model_defaults,
        ("nothing given", {}, {}),
        ("deployment default", {"cfg": {"name": "dep", "retries": 0}}, {}),
        ("recursive valid", {}, {"tree": {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}}),
        ("recursive bad deep", {}, {"tree": {"value": 1, "children": [{"value": 2, "children": [{"value": "x"}]}]}}),
        ("recursive children null", {}, {"tree": {"value": 1, "children": None}}),
    )

    @flow(name="deep")
    def deep(outer: Outer, strict: Optional[Strict] = None, pets: Optional[Pets] = None):
        pass

    ok_mid = {"inner": {"n": 1}, "note": "hi"}
    add(
        deep,
        ("valid", {}, {"outer": {"mid": ok_mid, "mids": [ok_mid]}}),
        ("Optional without default omitted", {}, {"outer": {"mid": {"inner": {"n": 1}}}}),
        ("Optional without default null", {}, {"outer": {"mid": {"inner": {"n": 1}, "note": None}}}),
        ("deep wrong type in list", {}, {"outer": {"mid": ok_mid, "mids": [{"inner": {"n": "x"}}]}}),
        ("forbidden extra", {}, {"outer": {"mid": ok_mid}, "strict": {"a": 1, "b": 2}}),
        ("strict valid", {}, {"outer": {"mid": ok_mid}, "strict": {"a": 1}}),
        ("discriminated cat", {}, {"outer": {"mid": ok_mid}, "pets": {"pet": {"kind": "cat", "lives": 3}}}),
        ("discriminated dog", {}, {"outer": {"mid": ok_mid}, "pets": {"pet": {"kind": "dog"}}}),
        ("discriminated unknown kind", {}, {"outer": {"mid": ok_mid}, "pets": {"pet": {"kind": "cow"}}}),
        ("discriminator omitted", {}, {"outer": {"mid": ok_mid}, "pets": {"pet": {}}}),
    )

    @flow(name="collections")
    def collections(
        xs: List[int],
        m: Dict[str, float] = None,
        t: Tuple[int, str] = (1, "a"),
        tv: Tuple[int, ...] = (),
        ss: Set[str] = None,
        raw: list = None,
        anything: Any = None,
        untyped=None,
    ):
        pass

    add(
        collections,
        ("valid", {}, {"xs": [1, 2], "m": {"a": 1.5}, "t": [2, "b"], "tv": [1, 2, 3], "ss": ["a"], "raw": [1, "a"], "anything": {"k": [1]}}),
        ("empty", {}, {"xs": [], "m": {}, "tv": [], "ss": []}),
        ("list item wrong", {}, {"xs": ["1"]}),
        ("dict value wrong", {}, {"xs": [], "m": {"a": "x"}}),
        ("tuple too long", {}, {"xs": [], "t": [1, "a", "extra"]}),
        ("tuple too short", {}, {"xs": [], "t": [1]}),
        ("tuple item wrong", {}, {"xs": [], "t": ["a", 1]}),
        ("variadic tuple wrong", {}, {"xs": [], "tv": [1, "a"]}),
        ("set duplicates", {}, {"xs": [], "ss": ["a", "a"]}),
        ("list as object", {}, {"xs": {"0": 1}}),
        ("untyped anything", {}, {"xs": [], "untyped": {"a": [None]}, "anything": None}),
        ("null list", {}, {"xs": None}),
    )

    # pydantic 1 writes a tuple as "items": [...]; Prefect turns that into
    # prefixItems only for a parameter itself, and its server fails on the
    # nested one (a 2020-12 schema error).
    @flow(name="nested-tuples")
    def nested_tuples(pairs: List[Tuple[int, str]] = None):
        pass

    add(
        nested_tuples,
        ("valid", {}, {"pairs": [[1, "a"], [2, "b"]]}),
        ("item wrong", {}, {"pairs": [["a", 1]]}),
        ("nothing given", {}, {}),
    )

    @flow(name="temporal")
    def temporal(
        when: datetime.datetime,
        day: datetime.date = None,
        dur: datetime.timedelta = None,
        at: datetime.time = None,
    ):
        pass

    add(
        temporal,
        ("valid", {}, {"when": "2026-01-02T03:04:05Z", "day": "2026-01-02", "dur": "PT5M", "at": "03:04:05"}),
        ("not a date", {}, {"when": "yesterday", "day": "soon"}),
        ("number for datetime", {}, {"when": 1767225600}),
        ("duration as seconds", {}, {"when": "2026-01-02T03:04:05Z", "dur": 300}),
        ("null datetime", {}, {"when": None}),
    )

    @flow(name="ids-paths-secrets")
    def ids_paths_secrets(
        id: uuid.UUID,
        p: pathlib.Path = pathlib.Path("."),
        secret: SecretStr = None,
        opt_id: Optional[uuid.UUID] = None,
        small: pyd.conint(ge=0, le=10) = 0,
        short: pyd.constr(max_length=3) = "",
    ):
        pass

    pattern = {"regex" if str(pyd.VERSION).startswith("1.") else "pattern": r"^\d+$"}

    @flow(name="constraints")
    def constraints(
        step: pyd.confloat(multiple_of=0.1) = 0.0,
        count: pyd.conint(multiple_of=5) = 0,
        digits: pyd.constr(**pattern) = "0",
        word: pyd.constr(min_length=2, max_length=4) = "ab",
        triple: pyd.conint(multiple_of=3) = 0,
        below: pyd.conint(lt=2**53 + 1) = 0,
    ):
        pass

    add(
        constraints,
        ("multiple of a fraction, exact in decimal", {}, {"step": 3.0}),
        ("multiple of a fraction, rounding", {}, {"step": 0.3}),
        ("not a multiple", {}, {"step": 0.25}),
        ("integer multiple", {}, {"count": 10}),
        ("integer not a multiple", {}, {"count": 7}),
        ("ascii digits", {}, {"digits": "123"}),
        ("unicode digits", {}, {"digits": "\u0661\u0662"}),
        ("trailing newline", {}, {"digits": "12\n"}),
        ("not digits", {}, {"digits": "12a"}),
        ("length in code points", {}, {"word": "\U0001F600\U0001F600"}),
        ("too short", {}, {"word": "a"}),
        # Past 2**53 a float64 rounds: Python's ints do not.
        ("huge multiple", {}, {"triple": 3 * 3002399751580331}),
        ("huge just below the bound", {}, {"below": 2**53}),
        ("huge at the bound", {}, {"below": 2**53 + 1}),
    )

    add(
        ids_paths_secrets,
        ("valid", {}, {"id": BLOCK_ID, "p": "/tmp/x", "secret": "hunter2", "opt_id": OTHER_ID, "small": 10, "short": "abc"}),
        ("uuid malformed", {}, {"id": "not-a-uuid"}),
        ("uuid as number", {}, {"id": 5}),
        ("path as number", {}, {"id": BLOCK_ID, "p": 1}),
        ("secret as number", {}, {"id": BLOCK_ID, "secret": 1234}),
        ("out of range", {}, {"id": BLOCK_ID, "small": 11}),
        ("too long", {}, {"id": BLOCK_ID, "short": "abcd"}),
    )

    @flow(name="blocks")
    def blocks(creds: Creds, endpoint: Endpoint = None, opt: Optional[Creds] = None, holder: WithCreds = None):
        pass

    add(
        blocks,
        ("deployment default block_document_id", {"creds": {"$ref": {"block_document_id": BLOCK_ID}}}, {}),
        ("run value string ref", {}, {"creds": {"$ref": BLOCK_ID}}),
        ("inline value", {}, {"creds": {"user": "u", "password": "p"}}),
        ("inline value missing field", {}, {"creds": {"user": "u"}}),
        ("ref to nothing", {}, {"creds": {"$ref": {}}}),
        ("ref as number", {}, {"creds": {"$ref": 5}}),
        ("ref not a uuid", {}, {"creds": {"$ref": "not-a-uuid"}}),
        ("ref with a number id", {}, {"creds": {"$ref": {"block_document_id": 5}}}),
        ("block missing", {}, {}),
        ("all-default block by ref", {}, {"creds": {"$ref": BLOCK_ID}, "endpoint": {"$ref": {"block_document_id": OTHER_ID}}}),
        ("all-default block inline", {}, {"creds": {"$ref": BLOCK_ID}, "endpoint": {"url": "http://x"}}),
        ("Optional block ref", {}, {"creds": {"$ref": BLOCK_ID}, "opt": {"$ref": OTHER_ID}}),
        ("Optional block null", {}, {"creds": {"$ref": BLOCK_ID}, "opt": None}),
        ("block ref inside a model", {}, {"creds": {"$ref": BLOCK_ID}, "holder": {"creds": {"$ref": {"block_document_id": OTHER_ID}}}}),
        ("block as string", {}, {"creds": BLOCK_ID}),
    )

    @flow(name="placeholders")
    def placeholders(n: int, name: str = "x", cfg: Config = None, xs: List[int] = None, flag: bool = False):
        pass

    add(
        placeholders,
        ("variable at top", {}, {"n": ph_var("retries")}),
        ("variable of the wrong type", {}, {"n": ph_var("env")}),
        ("variable missing", {}, {"n": ph_var("nope")}),
        ("variable without a name is removed", {}, {"n": 1, "name": {"__prefect_kind": "workspace_variable"}}),
        ("required removed", {}, {"n": {"__prefect_kind": "json"}}),
        ("json", {}, {"n": ph_json("5")}),
        ("json of the wrong type", {}, {"n": ph_json('"five"')}),
        ("json invalid", {}, {"n": ph_json("{oops")}),
        ("json NaN", {}, {"n": 1, "cfg": {"name": "a", "retries": ph_json("NaN")}}),
        ("json non-string value", {}, {"n": ph_json(7)}),
        ("json of a variable", {}, {"n": 1, "xs": ph_json(ph_var("json_text"))}),
        ("jinja to string", {}, {"n": 1, "name": ph_jinja("{{ 1 + 1 }}")}),
        ("jinja to int field", {}, {"n": ph_jinja("{{ 1 + 1 }}")}),
        ("jinja invalid", {}, {"n": 1, "name": ph_jinja("{{")}),
        ("jinja without template", {}, {"n": 1, "name": {"__prefect_kind": "jinja"}}),
        ("none passes through", {}, {"n": ph_none(3)}),
        ("none without value", {}, {"n": {"__prefect_kind": "none"}}),
        ("none nested", {}, {"n": ph_none(ph_json("4"))}),
        ("unknown kind takes value", {}, {"n": {"__prefect_kind": "mystery", "value": 2}}),
        ("unknown kind wrong value", {}, {"n": {"__prefect_kind": "mystery", "value": "x"}}),
        ("variable in a model field", {}, {"n": 1, "cfg": {"name": ph_var("env")}}),
        ("variable of wrong type in a model field", {}, {"n": 1, "cfg": {"name": "a", "retries": ph_var("env")}}),
        ("variable deep in a model", {}, {"n": 1, "cfg": {"name": "a", "inner": {"n": ph_var("retries")}}}),
        ("json deep in a model", {}, {"n": 1, "cfg": {"name": "a", "inner": {"n": 1, "items": [ph_json("2"), 3]}}}),
        ("bad value beside a placeholder", {}, {"n": 1, "cfg": {"name": ph_var("env"), "retries": "x"}}),
        ("variable as whole model", {}, {"n": 1, "cfg": ph_var("cfg")}),
        ("variable list", {}, {"n": 1, "xs": ph_var("nums")}),
        ("placeholder list items", {}, {"n": 1, "xs": [ph_var("retries"), ph_json("2"), {"__prefect_kind": "json"}]}),
        ("removed item in list", {}, {"n": 1, "xs": [1, {"__prefect_kind": "workspace_variable"}]}),
        ("variable bool", {}, {"n": 1, "flag": ph_var("flag")}),
        ("placeholder in deployment defaults", {"n": ph_var("retries"), "cfg": {"name": ph_var("env")}}, {}),
        ("missing variable in deployment default overridden", {"n": ph_var("nope")}, {"n": 2}),
    )

    class Aliased(BaseModel):
        klass: str = Field(..., alias="class")

    @flow(name="more-types")
    def more_types(
        amount: decimal.Decimal = decimal.Decimal("0"),
        ip: ipaddress.IPv4Address = None,
        codes: Dict[int, str] = None,
        maybe: List[Optional[int]] = None,
        seq: Sequence[int] = (),
        fs: FrozenSet[int] = frozenset(),
        mp: Mapping[str, List[int]] = None,
        raw_bytes: bytes = b"",
        aliased: Aliased = None,
        vault: Vault = None,
        json: str = "",
    ):
        pass

    add(
        more_types,
        ("decimal as string", {}, {"amount": "1.50"}),
        ("decimal as number", {}, {"amount": 1.5}),
        ("decimal not a number", {}, {"amount": "abc"}),
        ("ip valid", {}, {"ip": "10.0.0.1"}),
        ("ip malformed", {}, {"ip": "999.1"}),
        ("int-keyed dict", {}, {"codes": {"1": "a", "2": "b"}}),
        ("int-keyed dict with a word key", {}, {"codes": {"one": "a"}}),
        ("list of Optional with nulls", {}, {"maybe": [1, None, 3]}),
        ("sequence and frozenset", {}, {"seq": [1, 2], "fs": [3, 3]}),
        ("mapping of lists wrong", {}, {"mp": {"a": [1, "x"]}}),
        ("bytes", {}, {"raw_bytes": "aGVsbG8="}),
        ("alias used", {}, {"aliased": {"class": "x"}}),
        ("alias not used", {}, {"aliased": {"klass": "x"}}),
        ("block with a nested block reference", {}, {"vault": {"creds": {"$ref": BLOCK_ID}}}),
        ("block with a nested inline block", {}, {"vault": {"creds": {"user": "u", "password": "p"}, "path": "/x"}}),
        ("vault by reference", {}, {"vault": {"$ref": {"block_document_id": OTHER_ID}}}),
        ("parameter named like a model method", {}, {"json": "x"}),
    )

    @flow(name="kwargs")
    def kwargs_flow(a: int = 0, **kwargs):
        pass

    add(
        kwargs_flow,
        ("kwargs as object", {}, {"a": 1, "kwargs": {"x": 1}}),
        ("kwargs as list", {}, {"kwargs": [1]}),
    )

    return out
