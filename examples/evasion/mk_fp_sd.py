import torch
torch.manual_seed(1)
m = torch.nn.Sequential(*[torch.nn.Linear(16,16) for _ in range(50)])
torch.save(m.state_dict(), "benign/fp_sd_100tensors.pt")
