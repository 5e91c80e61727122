"""Reads checkov's JSON report on stdin; fails unless every check passed or was skipped with a
reason. checkov itself exits 0 on files it cannot parse, so parse errors are read from its
summary here."""

import json
import sys


def main():
    report = json.load(sys.stdin)
    reports = report if isinstance(report, list) else [report]
    problems = []
    resources = 0
    for part in reports:
        summary = part.get("summary", {})
        resources += summary.get("resource_count", 0)
        print(f"checkov {part.get('check_type')}: {summary}")
        if summary.get("parsing_errors", 0):
            problems.append(f"{summary['parsing_errors']} files could not be parsed: "
                            f"{part.get('results', {}).get('parsing_errors', [])}")
        results = part.get("results", {})
        for check in results.get("failed_checks", []):
            problems.append(f"FAILED {check['check_id']} {check['resource']} "
                            f"({check['file_path']}:{check['file_line_range'][0]}): {check['check_name']}")
        for check in results.get("skipped_checks", []):
            reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
            if not reason or reason == "No comment provided":
                problems.append(f"SKIPPED WITHOUT A REASON {check['check_id']} {check['resource']} "
                                f"({check['file_path']})")
            else:
                print(f"  skip {check['check_id']} {check['resource']}: {reason}")
    if resources == 0:
        problems.append("no resources were checked: is infra/ empty, or did checkov fail to read it?")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
