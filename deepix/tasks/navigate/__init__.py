"""Path planning on map images (issue 18), in progress: the maps, the environment (Gymnasium's API), the
optimal planner and the walkers an agent is measured against. The task itself (`deepix train navigate`,
its agent and report) is not registered yet."""
