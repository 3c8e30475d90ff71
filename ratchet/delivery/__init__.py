"""Progressive delivery: ramp the challenger's traffic share, compare it with the champion on
live traffic at every step, promote at the end or roll back at once on a guardrail breach.

Core library (no Prefect). The service is driven through its admin API only
(``PUT /admin/traffic``, ``POST /admin/reload``, ``GET /stats``), so the canary works against
any running instance, in this process or elsewhere.

* ``admin``: the service's admin API over HTTP (``AdminClient``, ``CanaryError``);
* ``service``: where the service is and which admin token it takes (fallback chains);
* ``stats``: windows of ``/stats`` reads and their differences (quantiles, distances);
* ``sequential``: the sequential tests (error SPRT, accuracy mSPRT);
* ``monitor``: the guardrails checked on each read (``CanaryMonitor``);
* ``results``: what a step and a canary end with (``StepResult``, ``CanaryResult``);
* ``rollout``: the lifecycle (begin, watch a step, record it, roll back or finish);
* ``markers``: the marker of a running canary, and the abort of one whose process died;
* ``report``: the table rows, the plot and the markdown report of a canary.

Nothing is imported here, so that a light caller (``ratchet down`` aborting a canary) pulls
in only the module it needs.
"""
