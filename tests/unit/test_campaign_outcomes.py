"""How the campaign command sorts users by outcome once it has read their grant records, without Firestore."""

from tools.publish_campaign import outcomes, report_outcomes


def test_users_are_granted_already_granted_conflicting_or_not_applied_by_their_records():
    before = {"a": 10, "b": None, "c": None, "d": 4}
    asked = []

    def read(users):
        asked.append(users)
        return {user: (10 if user == "b" else None) for user in users}

    report = outcomes("g", 10, [["a", "b"], ["c", "d"]], before, read, wait_s=0.05, poll_s=0.01)
    assert asked[0] == ["b", "c"] and all(users == ["c"] for users in asked[1:])  # only the missing are read again
    assert (report[0].already_granted, report[0].granted) == (["a"], ["b"])
    assert (report[1].not_applied, report[1].conflicting) == (["c"], {"d": 4})


def test_a_conflict_exits_1_and_users_still_without_a_record_exit_3(capsys):
    import io

    conflict = outcomes("g", 10, [["a"]], {"a": 3}, lambda users: {}, wait_s=0)
    assert report_outcomes(conflict, ["m1"], 10, 0, io.StringIO()) == 1
    waiting = outcomes("g", 10, [["a"]], {"a": None}, lambda users: {"a": None}, wait_s=0)
    out = io.StringIO()
    assert report_outcomes(waiting, ["m1"], 10, 0, out) == 3
    assert "1 not applied yet" in out.getvalue()
    done = outcomes("g", 10, [["a"]], {"a": None}, lambda users: {"a": 10}, wait_s=5)
    assert report_outcomes(done, ["m1"], 10, 5, io.StringIO()) == 0
