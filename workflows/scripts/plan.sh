#!/bin/sh
# A stand-in for `terraform plan`: prints a plan and publishes its counts as step outputs.
set -eu
echo "Planning changes for ${FLOWDECK_INPUTS}"
sleep 0.5
echo "  + aws_ecs_service.web (replicas)"
echo "  + aws_lb_target_group.web"
echo "  + aws_cloudwatch_metric_alarm.web_5xx"
echo "  ~ aws_ecs_task_definition.web"
sleep 0.5
echo "Plan: 3 to add, 1 to change, 0 to destroy."
printf '{"add": 3, "change": 1, "destroy": 0, "summary": "3 to add, 1 to change"}' > "$FLOWDECK_OUTPUTS"
