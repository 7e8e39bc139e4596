"""The command line: flags several commands share mean the same and default alike everywhere,
and every option says what it does."""

from bench.cli import _SHARED, PRIMARY_PAIR, _parser


def _commands():
    return _parser()._subparsers._group_actions[0].choices


def test_a_shared_flag_has_one_default_in_every_command():
    seen = {}
    for command, parser in _commands().items():
        for action in parser._actions:
            name = action.option_strings[0].lstrip("-") if action.option_strings else None
            if name in _SHARED:
                seen.setdefault(name, set()).add((command, repr(action.default), action.type))
    assert set(seen) == set(_SHARED)
    for name, uses in seen.items():
        defaults = {(d, t) for c, d, t in uses if (c, name) != ("stability", "strategy")}
        assert len(defaults) == 1, (name, sorted(uses))
    # The one deliberate exception: a stability study compares the primary pair by default.
    assert ("stability", repr(PRIMARY_PAIR), None) in seen["strategy"]


def test_every_option_says_what_it_does():
    missing = [(command, action.option_strings[0]) for command, parser in _commands().items()
               for action in parser._actions if action.option_strings and not action.help]
    assert missing == []
