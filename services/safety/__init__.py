"""Safety: blocks, reports, bans and account deletion.

- ``visibility``: the one SQL condition every list of other people applies (neither side blocked the other, the
  person is not banned), so lists are exact pages, never pages filtered after the fact;
- ``blocks``: block (ends a match and closes its conversation), unblock, my block list;
- ``reports``: a report also blocks; repeat reports join the reporter's open case about that user;
- ``bans``: the operators' ban/unban (``scripts/manage.py``): every session of the user ends in every process
  (the account's ``session_gen``, checked on every authenticated request), the user is hidden from everyone;
- ``deletion``: deleting an account from MySQL, Redis and storage.
"""
