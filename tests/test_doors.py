"""A login on either door closes both, unless a flag says to leave one open; the start-up line tells."""

from app.doors import resolve_doors

UI = [("me", "secret")]


def test_a_ui_login_guards_the_api_beside_it_and_the_other_way_round():
    doors = resolve_doors(ui=True, api=True, ui_auth=UI, api_auth={}, host="0.0.0.0")
    assert doors.api_auth == {"me": "secret"} and doors.ui_auth == UI
    doors = resolve_doors(ui=True, api=True, ui_auth=[], api_auth={"bot": "pw"}, host="127.0.0.1")
    assert doors.ui_auth == [("bot", "pw")] and doors.api_auth == {"bot": "pw"}


def test_each_door_keeps_its_own_login_when_both_are_given():
    doors = resolve_doors(ui=True, api=True, ui_auth=UI, api_auth={"bot": "pw"}, host="127.0.0.1")
    assert doors.ui_auth == UI and doors.api_auth == {"bot": "pw"}


def test_leaving_a_door_open_takes_the_flag_and_the_line_says_so():
    doors = resolve_doors(ui=True, api=True, ui_auth=UI, api_auth={}, host="0.0.0.0", api_without_auth=True)
    assert doors.api_auth == {} and doors.ui_auth == UI
    line = doors.describe("http://127.0.0.1:7860/")
    assert line.startswith("Doors (reachable from other machines)")
    assert "web UI http://127.0.0.1:7860/ (login required)" in line
    assert "API http://127.0.0.1:7860/sdapi/v1 (open, no login" in line
    doors = resolve_doors(ui=True, api=True, ui_auth=[], api_auth={"bot": "pw"}, host="::1", ui_without_auth=True)
    assert doors.ui_auth == [] and "web UI http://x/ (open, no login)" in doors.describe("http://x")


def test_reachable_means_listen_share_or_another_host():
    assert not resolve_doors(ui=True, api=False, ui_auth=[], api_auth={}, host="127.0.0.1").reachable
    assert resolve_doors(ui=True, api=False, ui_auth=[], api_auth={}, host="0.0.0.0").reachable
    assert resolve_doors(ui=True, api=False, ui_auth=[], api_auth={}, host="127.0.0.1", share=True).reachable


def test_the_api_alone_takes_the_ui_login_when_it_has_none():
    doors = resolve_doors(ui=False, api=True, ui_auth=UI, api_auth={}, host="127.0.0.1")
    assert doors.api_auth == {"me": "secret"} and "web UI" not in doors.describe("http://x")
